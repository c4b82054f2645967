"""The simulator's own control API under /_simulator (not ZStack's; no auth): journal, config, faults,
sessions, VM state holds, reset, and an inventory dump for test helpers."""

from __future__ import annotations

import collections
import itertools
import json
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .errors import ERROR_DESCRIPTIONS
from .models import ZStackNode

FAULT_ACTIONS = ("http_status", "drop_connection", "drop_after_accept", "job_error", "expire_job", "delay")
JOURNAL_MAX_ENTRIES = 50000


class Journal:
    """Every ZStack API request served (control-API calls excluded) and the counters tests and benchmarks read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=JOURNAL_MAX_ENTRIES)
        self._counters = {"requests": 0, "logins": 0, "jobs": 0}

    def record(self, method: str, path: str, status: int, duration_ms: float, *, login: bool, job: bool) -> None:
        with self._lock:
            self._entries.append(
                {"method": method, "path": path, "status": status, "durationMs": round(duration_ms, 3)}
            )
            self._counters["requests"] += 1
            self._counters["logins"] += int(login)
            self._counters["jobs"] += int(job)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": list(self._entries), "counters": dict(self._counters)}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counters = dict.fromkeys(self._counters, 0)


@dataclass
class Fault:
    id: str
    action: str
    method: str | None
    path_regex: str
    times: int | None  # None: every matching request
    status: int = 500
    body: Any = None
    error: dict[str, Any] | None = None
    delay_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "action": self.action, "method": self.method, "pathRegex": self.path_regex,
               "times": self.times}  # fmt: skip
        if self.action == "http_status":
            out.update(status=self.status, body=self.body)
        elif self.action == "job_error":
            out["error"] = self.error
        elif self.action == "delay":
            out["delayMs"] = self.delay_ms
        return out


class FaultRegistry:
    """Faults are matched in the order they were added; each match uses up one of its `times`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[tuple[Fault, re.Pattern[str]]] = []
        self._ids = itertools.count(1)

    def add(self, spec: Any) -> Fault:
        """Validate a fault spec (ValueError with the reason) and register it."""
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        action = spec.get("action")
        if action not in FAULT_ACTIONS:
            raise ValueError(f"action must be one of {list(FAULT_ACTIONS)}")
        method = spec.get("method")
        if method is not None and not isinstance(method, str):
            raise ValueError("method must be a string such as 'POST'")
        path_regex = spec.get("pathRegex", "")
        if not isinstance(path_regex, str):
            raise ValueError("pathRegex must be a string")
        try:
            pattern = re.compile(path_regex)
        except re.error as exc:
            raise ValueError(f"pathRegex does not compile: {exc}") from None
        times = spec.get("times", 1)
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
            raise ValueError("times must be an integer (or null / a negative number for every request)")
        if times is not None and times < 0:
            times = None
        if times == 0:
            raise ValueError("times must not be 0")
        fault = Fault(str(next(self._ids)), action, method.upper() if method else None, path_regex, times)
        if action == "http_status":
            status = spec.get("status", 500)
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise ValueError("status must be an HTTP status code")
            fault.status, fault.body = status, spec.get("body")
        elif action == "job_error":
            error = spec.get("error") or {"code": "SYS.1000", "details": "fault injected by the ZStack simulator"}
            if not isinstance(error, dict) or not isinstance(error.get("code"), str):
                raise ValueError("error must be an object with at least a 'code'")
            error = dict(error)
            error.setdefault("description", ERROR_DESCRIPTIONS.get(error["code"], "An operation failed"))
            fault.error = error
        elif action == "delay":
            delay = spec.get("delayMs")
            if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
                raise ValueError("delayMs must be a non-negative number")
            fault.delay_ms = float(delay)
        with self._lock:
            self._faults.append((fault, pattern))
        return fault

    def take(self, method: str, path_with_query: str) -> Fault | None:
        with self._lock:
            for i, (fault, pattern) in enumerate(self._faults):
                if fault.method not in (None, method) or not pattern.search(path_with_query):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        del self._faults[i]
                return fault
        return None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f, _ in self._faults]

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [(f, p) for f, p in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


class ControlApi:
    """Routes /_simulator/... to the node, journal and faults. Answers (status, JSON body)."""

    def __init__(self, node: ZStackNode, journal: Journal, faults: FaultRegistry) -> None:
        self.node = node
        self.journal = journal
        self.faults = faults

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            payload = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return 400, {"error": f"body is not valid JSON: {exc}"}
        parts = [unquote(p) for p in path.strip("/").split("/")[1:]]
        try:
            return self._route(method, parts, payload)
        except ValueError as exc:
            return 400, {"error": str(exc)}

    def _route(self, method: str, parts: list[str], payload: Any) -> tuple[int, dict[str, Any]]:
        route = (method, *parts)
        if route == ("GET", "journal"):
            return 200, self.journal.to_dict()
        if route == ("DELETE", "journal"):
            self.journal.clear()
            return 200, {}
        if route == ("GET", "config"):
            return 200, self.node.get_config()
        if route == ("PUT", "config"):
            if not isinstance(payload, dict):
                raise ValueError("config is a JSON object")
            return 200, self.node.update_config(payload)
        if route == ("POST", "faults"):
            return 200, {"id": self.faults.add(payload).id}
        if route == ("GET", "faults"):
            return 200, {"faults": self.faults.list()}
        if route == ("DELETE", "faults"):
            self.faults.clear()
            return 200, {}
        if method == "DELETE" and len(parts) == 2 and parts[0] == "faults":
            if not self.faults.remove(parts[1]):
                return 404, {"error": f"no fault with id {parts[1]}"}
            return 200, {}
        if route == ("POST", "sessions", "expire"):
            return 200, {"expired": self.node.identity.expire_all()}
        if method == "PUT" and len(parts) == 3 and parts[0] == "vm-instances" and parts[2] == "state":
            return self._hold(parts[1], payload)
        if route == ("POST", "reset"):
            self.node.reset()
            self.journal.clear()
            self.faults.clear()
            return 200, {}
        if route == ("GET", "inventory"):
            return 200, self.node.dump()
        return 404, {"error": f"no control API {method} /_simulator/{'/'.join(parts)}"}

    def _hold(self, vm_uuid: str, payload: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(payload, dict) or not isinstance(payload.get("state"), str):
            raise ValueError('body must be {"state": "<VM state>", "seconds": <number>}')
        seconds = payload.get("seconds", 1)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError("seconds must be a non-negative number")
        try:
            return 200, self.node.vms.hold_state(vm_uuid, payload["state"], float(seconds))
        except KeyError:
            return 404, {"error": f"no VM with uuid {vm_uuid}"}
