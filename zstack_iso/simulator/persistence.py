"""The state file (`--state`): its format, and how it is written (atomically) and read back.

Format 1: {"formatVersion": 1, "inventory": {...seed tables, VMs saved settled...}, "sessions": {uuid: {...}},
"jobs": {uuid: {"api", "expired", "httpStatus", "body", "completedAt"} or {"api", "expired", "state": "lost"}}}.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .inventory import Inventory
from .jobs import Job
from .records import Session, from_dict

STATE_FORMAT_VERSION = 1


def snapshot(inventory: Inventory, sessions: dict[str, Session], jobs: dict[str, Job]) -> dict[str, Any]:
    """The persistent state (called under the node's lock)."""
    saved_jobs = {}
    for uid, job in jobs.items():
        entry: dict[str, Any] = {"api": job.api, "expired": job.expired}
        if job.state == "done":
            entry.update(httpStatus=job.http_status, body=job.body, completedAt=job.completed_at)
        else:
            entry["state"] = "lost"  # §3.4: a job in flight when the node stops is lost; its poll answers 404
        saved_jobs[uid] = entry
    return {
        "formatVersion": STATE_FORMAT_VERSION,
        "inventory": inventory.to_state(),
        "sessions": {uid: asdict(s) for uid, s in sessions.items()},
        "jobs": saved_jobs,
    }


def restore(data: dict[str, Any], inventory: Inventory, generation: int) -> tuple[dict[str, Session], dict[str, Job]]:
    """Load a state file's inventory into `inventory`; return its sessions and jobs."""
    if data.get("formatVersion") != STATE_FORMAT_VERSION:
        raise ValueError(f"state file format {data.get('formatVersion')!r} is not {STATE_FORMAT_VERSION}")
    inventory.load(data["inventory"])
    sessions = {uid: from_dict(Session, row) for uid, row in data.get("sessions", {}).items()}
    jobs = {}
    for uid, entry in data.get("jobs", {}).items():
        job = Job(uuid=uid, api=entry.get("api", ""), generation=generation, expired=entry.get("expired"))
        if entry.get("state") == "lost":
            job.state = "lost"
        else:
            job.state, job.http_status = "done", entry["httpStatus"]
            job.body, job.completed_at = entry["body"], entry["completedAt"]
        jobs[uid] = job
    return sessions, jobs


class StateFile:
    """Where the state is saved (None: nowhere). A closed one writes nothing more."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._closed = False

    def read(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.exists():
            return None
        return json.loads(self.path.read_text(encoding="utf-8"))

    def close(self) -> None:
        self._closed = True  # a stopped node writes nothing more (a restarted one may own the file now)

    def save(self, state: Callable[[], dict[str, Any]]) -> None:
        """Write state() atomically (tmp file, fsync, os.replace).

        The node calls it under its lock, in the same critical section as the change it saves, so whatever a
        client has seen (a 202, a job result, an attached ISO) is on disk before anyone can see it.
        """
        if self.path is None or self._closed:
            return
        data = json.dumps(state(), separators=(",", ":"))
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
