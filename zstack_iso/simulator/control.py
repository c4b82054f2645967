"""The simulator's own control API under /_simulator (not ZStack's; no auth): journal, config, faults,
sessions, VM state holds, reset, and an inventory dump for test helpers. Routes: urls.CONTROL_ROUTES."""

from __future__ import annotations

import collections
import json
import threading
from typing import Any
from urllib.parse import unquote

from .faults import FaultRegistry
from .models import ZStackNode
from .urls import match_control_route

JOURNAL_MAX_ENTRIES = 50000

Answer = tuple[int, dict[str, Any]]


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


class ControlApi:
    """Routes /_simulator/... to the node, journal and faults. Answers (status, JSON body); a ValueError is 400."""

    def __init__(self, node: ZStackNode, journal: Journal, faults: FaultRegistry) -> None:
        self.node = node
        self.journal = journal
        self.faults = faults

    def handle(self, method: str, path: str, body: bytes) -> Answer:
        try:
            payload = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return 400, {"error": f"body is not valid JSON: {exc}"}
        parts = [unquote(p) for p in path.strip("/").split("/")[1:]]
        routed = match_control_route(method, parts)
        if routed is None:
            return 404, {"error": f"no control API {method} /_simulator/{'/'.join(parts)}"}
        handler, variables = routed
        try:
            return getattr(self, "_" + handler)(variables, payload)
        except ValueError as exc:
            return 400, {"error": str(exc)}

    def _get_journal(self, _: dict[str, str], __: Any) -> Answer:
        return 200, self.journal.to_dict()

    def _clear_journal(self, _: dict[str, str], __: Any) -> Answer:
        self.journal.clear()
        return 200, {}

    def _get_config(self, _: dict[str, str], __: Any) -> Answer:
        return 200, self.node.get_config()

    def _put_config(self, _: dict[str, str], payload: Any) -> Answer:
        if not isinstance(payload, dict):
            raise ValueError("config is a JSON object")
        return 200, self.node.update_config(payload)

    def _add_fault(self, _: dict[str, str], payload: Any) -> Answer:
        return 200, {"id": self.faults.add(payload).id}

    def _list_faults(self, _: dict[str, str], __: Any) -> Answer:
        return 200, {"faults": self.faults.list()}

    def _clear_faults(self, _: dict[str, str], __: Any) -> Answer:
        self.faults.clear()
        return 200, {}

    def _remove_fault(self, variables: dict[str, str], _: Any) -> Answer:
        if not self.faults.remove(variables["id"]):
            return 404, {"error": f"no fault with id {variables['id']}"}
        return 200, {}

    def _expire_sessions(self, _: dict[str, str], __: Any) -> Answer:
        return 200, {"expired": self.node.identity.expire_all()}

    def _hold_vm_state(self, variables: dict[str, str], payload: Any) -> Answer:
        vm_uuid = variables["uuid"]
        if not isinstance(payload, dict) or not isinstance(payload.get("state"), str):
            raise ValueError('body must be {"state": "<VM state>", "seconds": <number>}')
        seconds = payload.get("seconds", 1)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError("seconds must be a non-negative number")
        try:
            return 200, self.node.vms.hold_state(vm_uuid, payload["state"], float(seconds))
        except KeyError:
            return 404, {"error": f"no VM with uuid {vm_uuid}"}

    def _reset(self, _: dict[str, str], __: Any) -> Answer:
        self.node.reset()
        self.journal.clear()
        self.faults.clear()
        return 200, {}

    def _inventory(self, _: dict[str, str], __: Any) -> Answer:
        return 200, self.node.dump()
