"""Injected faults (the control API's /_simulator/faults): what each action does, and where.

A fault matches a ZStack API request by method and a regex over its path with the query string, in the order
faults were added; each match uses up one of its `times`. Where each action acts, in the order a request meets it:

| action              | effect                                                                  | applied in          |
|---------------------|-------------------------------------------------------------------------|---------------------|
| `delay`             | waits `delayMs`, then the request is served as if no fault matched      | server.py           |
| `drop_connection`   | the connection is cut before anything runs (journal status 0)           | server.py           |
| `http_status`       | answers `status` with `body` instead of the API                         | server.py           |
| `job_error`         | a synchronous API answers 503 `error` at once; an async one is accepted | responses.py        |
|                     | and its job fails with `error` after jobSeconds; a poll answers it      | responses.py        |
| `expire_job`        | the accepted job is expired: its polls answer 404; a poll answers 404   | responses.py        |
| `drop_after_accept` | the request runs (its job is accepted), the answer is lost              | server.py           |
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass
from typing import Any

from .errors import ERROR_DESCRIPTIONS

FAULT_ACTIONS = ("http_status", "drop_connection", "drop_after_accept", "job_error", "expire_job", "delay")


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

    @property
    def delays(self) -> bool:
        return self.action == "delay"

    @property
    def drops_connection(self) -> bool:
        return self.action == "drop_connection"

    @property
    def answers_instead(self) -> bool:
        return self.action == "http_status"

    @property
    def fails_job(self) -> bool:
        return self.action == "job_error"

    @property
    def expires_job(self) -> bool:
        return self.action == "expire_job"

    @property
    def drops_answer(self) -> bool:
        return self.action == "drop_after_accept"

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


def _times(spec: dict[str, Any]) -> int | None:
    times = spec.get("times", 1)
    if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
        raise ValueError("times must be an integer (or null / a negative number for every request)")
    if times is not None and times < 0:
        times = None
    if times == 0:
        raise ValueError("times must not be 0")
    return times


def _set_action_fields(fault: Fault, spec: dict[str, Any]) -> None:
    if fault.action == "http_status":
        status = spec.get("status", 500)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        fault.status, fault.body = status, spec.get("body")
    elif fault.action == "job_error":
        error = spec.get("error") or {"code": "SYS.1000", "details": "fault injected by the ZStack simulator"}
        if not isinstance(error, dict) or not isinstance(error.get("code"), str):
            raise ValueError("error must be an object with at least a 'code'")
        error = dict(error)
        error.setdefault("description", ERROR_DESCRIPTIONS.get(error["code"], "An operation failed"))
        fault.error = error
    elif fault.action == "delay":
        delay = spec.get("delayMs")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError("delayMs must be a non-negative number")
        fault.delay_ms = float(delay)


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
        times = _times(spec)
        fault = Fault(str(next(self._ids)), action, method.upper() if method else None, path_regex, times)
        _set_action_fields(fault, spec)
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
