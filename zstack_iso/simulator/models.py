"""The simulated ZStack management node, composed of its parts (like moto's models.py, no HTTP here).

Each concern has its module: inventory.py (tables and lookups, records.py for the record classes), sessions.py
(identity), jobs.py (jobs, VM queues, timers), queries.py, isos.py / cdroms.py / images.py / vms.py (the rules of
each API, in the order the real node runs them, each with its error code beside it and a citation of
docs/zstack-api.md), persistence.py (the state file), errors.py (the error codes). The wire layer
(responses.py) parses a request, calls one method of one part and renders what it returns or the ApiError it
raises.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .cdroms import CdRomRules
from .config import SimConfig, checked_changes
from .errors import ApiError
from .images import ImageRules
from .inventory import Inventory
from .isos import IsoRules
from .jobs import Jobs
from .persistence import StateFile, restore, snapshot
from .queries import Queries
from .records import Session
from .seed import load_seed_file
from .sessions import Identity
from .vms import VmRules

__all__ = ["ApiError", "ZStackNode"]


class ZStackNode:
    """A management node: its parts share one lock (never held while sleeping) and one config."""

    def __init__(
        self,
        seed: dict[str, Any] | None = None,
        *,
        job_seconds: float = 1.0,
        latency_ms: float = 0.0,
        session_timeout_seconds: int = 7200,
        state_file: str | Path | None = None,
        strict_attach: bool = False,
    ) -> None:
        self._seed = seed if seed is not None else load_seed_file()
        self._lock = threading.RLock()
        self._initial_config = SimConfig(
            float(job_seconds), float(latency_ms), int(session_timeout_seconds), bool(strict_attach)
        )
        self.config = SimConfig(**self._initial_config.to_dict())
        self.state_file = StateFile(state_file)
        self.inventory = Inventory(self._seed)
        self.jobs = Jobs(self._lock, self.config, self._save)
        self.identity = Identity(self._lock, self.inventory, self.config, self.jobs, self._save)
        self.queries = Queries(self._lock, self.inventory, self.identity)
        parts = (self._lock, self.inventory, self.identity, self.jobs, self.config)
        self.isos = IsoRules(*parts)
        self.cdroms = CdRomRules(*parts)
        self.images = ImageRules(*parts)
        self.vms = VmRules(*parts)
        saved = self.state_file.read()
        if saved is not None:
            self.identity.sessions, self.jobs.table = restore(saved, self.inventory, self.jobs.generation)
        self._save()

    def _save(self) -> None:
        with self._lock:
            self.state_file.save(lambda: snapshot(self.inventory, self.identity.sessions, self.jobs.table))

    @property
    def sessions(self) -> dict[str, Session]:
        return self.identity.sessions

    @property
    def access_keys(self) -> dict[str, str]:
        """AccessKey id -> secret, for every key of the inventory."""
        return self.identity.access_keys

    @property
    def default_access_key(self) -> tuple[str, str]:
        return self.identity.default_access_key

    def close(self) -> None:
        """Stop timers and job threads; in-flight jobs are abandoned (a crash loses them, §3.4)."""
        self.state_file.close()
        self.jobs.close()

    # ------------------------------------------------------------------ control (not ZStack's API)

    def reset(self) -> None:
        """Back to the seed inventory and the start-up config; sessions and jobs are dropped."""
        with self._lock:
            self.jobs.reset()
            self.inventory.load(self._seed)
            self.identity.sessions = {}
            self.config.set(self._initial_config.to_dict())
            self._save()

    def get_config(self) -> dict[str, Any]:
        with self._lock:
            return self.config.to_dict()

    def update_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change any subset of jobSeconds, latencyMs, sessionTimeoutSeconds, strictAttach; ValueError on a bad
        value."""
        clean = checked_changes(changes)
        with self._lock:
            self.config.set(clean)
            return self.config.to_dict()

    def dump(self) -> dict[str, Any]:
        """The control API's inventory: every VM, CD-ROM and image as on the wire, the accounts and AccessKeys."""
        with self._lock:
            return self.inventory.dump()
