"""What every set of async API rules works with (isos, cdroms, images, vms)."""

from __future__ import annotations

import threading

from .config import SimConfig
from .inventory import Inventory
from .jobs import Jobs
from .sessions import Identity


class Rules:
    """The node's lock, the tables and lookups, the session check, the jobs and queues, and the run-time config.
    A rule raises ApiError with its code; intercept() and queued() run under the lock (see jobs.py)."""

    def __init__(
        self, lock: threading.RLock, inventory: Inventory, identity: Identity, jobs: Jobs, config: SimConfig
    ) -> None:
        self.lock = lock
        self.inventory = inventory
        self.identity = identity
        self.jobs = jobs
        self.config = config
