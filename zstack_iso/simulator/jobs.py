"""Async jobs (§3.3, §3.4) and the per-VM FIFO queues they run in (§10), on one timer thread.

An async API runs in three steps, each a callable the rules give `Jobs.submit`: intercept() at once (the API
interceptors: concurrent, §1.5), queued(context) when the job reaches the head of its VM's queue (the checks of
the VM's own handler), then apply() after the job's duration (the change, and the job's result).
"""

from __future__ import annotations

import collections
import copy
import heapq
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import SimConfig
from .errors import Answered, ApiError, DuplicateJobError

log = logging.getLogger("zstack_iso.simulator")

DEFAULT_API_TIMEOUT_MS = 1800000  # §3.3 "30m"
COMPLETED_JOB_TTL_SECONDS = 10800  # §3.4 rest.completedApi.expiredPeriod
MAX_KEPT_JOBS = 20000

Apply = Callable[[], dict[str, Any]]
Intercept = Callable[[], tuple[str, Any]]
Queued = Callable[[Any], Apply]


@dataclass
class Job:
    uuid: str
    api: str
    generation: int
    timeout_ms: int = DEFAULT_API_TIMEOUT_MS
    state: str = "running"  # running | done | lost (in flight when the node stopped)
    http_status: int = 202
    body: dict[str, Any] | None = None
    expired: bool = False  # polls answer 404 (§3.4 "expired job"; also the expire_job fault)
    injected_error: dict[str, Any] | None = None  # the job_error fault
    completed_at: float | None = None


class Scheduler:
    """One timer thread for every delayed action (job timeouts, injected job errors, state holds)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def call_later(self, seconds: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                return
            self._seq += 1
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, seconds), self._seq, fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="zstack-sim-timers", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("simulator timer failed")


class _VmQueue:
    """One VM's FIFO (§10: chainSubmit with sync level 1): one drain thread at a time."""

    def __init__(self) -> None:
        self.tasks: collections.deque[Callable[[], None]] = collections.deque()
        self.busy = False


class Jobs:
    """The node's jobs by UUID, its VM queues and its timers. `generation` changes on reset: work of an older
    generation belongs to a discarded inventory and is dropped."""

    def __init__(self, lock: threading.RLock, config: SimConfig, save: Callable[[], None]) -> None:
        self._lock = lock
        self._config = config
        self._save = save
        self._stop = threading.Event()
        self._scheduler = Scheduler()
        self._queues: dict[str, _VmQueue] = {}
        self.table: dict[str, Job] = {}
        self.generation = 0

    def later(self, seconds: float, fn: Callable[[], None]) -> None:
        """Run fn after `seconds` on the node's timer thread (no busy wait); dropped by close()."""
        self._scheduler.call_later(seconds, fn)

    def close(self) -> None:
        """Stop timers and job threads; in-flight jobs are abandoned (a crash loses them, §3.4)."""
        self._stop.set()
        self._scheduler.close()

    def reset(self) -> None:
        self.generation += 1
        self.table = {}
        self._queues = {}

    # ------------------------------------------------------------------ the job API (§3.2-§3.4)

    def used(self, job_uuid: str) -> bool:
        with self._lock:
            return job_uuid in self.table

    def accept(
        self,
        api: str,
        job_uuid: str | None = None,
        timeout_ms: int | None = None,
        *,
        injected_error: dict[str, Any] | None = None,
        expired: bool = False,
    ) -> Job:
        """§3.3: register an async job (the 202). Raises DuplicateJobError for a reused X-Job-UUID (§3.2)."""
        with self._lock:
            self._prune(time.time())
            uid = job_uuid or uuid.uuid4().hex
            if uid in self.table:
                raise DuplicateJobError(uid)
            job = Job(
                uuid=uid,
                api=api,
                generation=self.generation,
                timeout_ms=DEFAULT_API_TIMEOUT_MS if timeout_ms is None else timeout_ms,
                injected_error=injected_error,
                expired=expired,
            )
            self.table[uid] = job
            self._save()
        # ApiTimeoutManagerImpl.java:119-123 @ 5a29293: a set timeout (0 and negative too) is the apiTimeout;
        # what a node does with a timeout <= 0 was not traced (UNCONFIRMED): here it never times the job out.
        if timeout_ms is not None and timeout_ms > 0:
            self.later(timeout_ms / 1000.0, lambda: self._time_out(job))
        return job

    def poll(self, job_uuid: str) -> tuple[int, dict[str, Any], str] | None:
        """§3.4: (202, {}) while running, (200, result) or (503, error) when done, with the job's API name;
        None for an unknown job."""
        with self._lock:
            job = self.table.get(job_uuid)
            if job is None or job.expired or job.state == "lost":
                return None
            if job.state == "running":
                return 202, {}, job.api
            return job.http_status, copy.deepcopy(job.body or {}), job.api

    def _prune(self, now: float) -> None:
        table = self.table
        stale = [u for u, j in table.items() if j.completed_at and now - j.completed_at > COMPLETED_JOB_TTL_SECONDS]
        for u in stale:
            del table[u]
        overflow = len(table) - MAX_KEPT_JOBS
        if overflow > 0:
            done = sorted((j.completed_at, u) for u, j in table.items() if j.completed_at)
            for _, u in done[:overflow]:
                del table[u]

    def _time_out(self, job: Job) -> None:
        # A timed-out API reply does not cancel the work already queued on the VM, as on a real node.
        with self._lock:
            if job.generation != self.generation:
                return
            self._finish(job, error=ApiError("SYS.1001", f"API[{job.api}] timeout after {job.timeout_ms}ms"))

    def _finish(self, job: Job, result: dict[str, Any] | None = None, error: ApiError | None = None) -> None:
        """Complete a job (under the lock) and save the state. A job completes once; later results are dropped."""
        if job.state != "running":
            self._save()  # the work of a timed-out job still changed the inventory
            return
        job.state = "done"
        job.completed_at = time.time()
        if error is not None:
            job.http_status, job.body = 503, {"error": error.to_dict()}
        else:
            job.http_status, job.body = 200, result or {}
        self._save()

    # ------------------------------------------------------------------ running a job

    def submit(self, job: Job, intercept: Intercept, queued: Queued) -> None:
        """Run an async API: intercept() now, under the lock, returns (queue key, context) or raises ApiError
        (or Answered); queued(context) runs under the lock at the head of the queue, re-checks and returns
        apply(), which runs after the job's duration and returns the result."""
        if job.injected_error is not None:
            error = dict(job.injected_error)
            self.later(self._config.jobSeconds, lambda: self._finish_injected(job, error))
            return
        with self._lock:
            try:
                key, ctx = intercept()
            except Answered as answered:
                self._finish(job, answered.result)
            except ApiError as exc:
                self._finish(job, error=exc)
            else:
                queue = self._queues.setdefault(key, _VmQueue())
                queue.tasks.append(lambda: self._run_queued(job, queued, ctx))
                if not queue.busy:
                    queue.busy = True
                    threading.Thread(target=self._drain, args=(queue,), name=f"vm-queue-{key}", daemon=True).start()

    def _finish_injected(self, job: Job, error: dict[str, Any]) -> None:
        with self._lock:
            if job.generation == self.generation and job.state == "running":
                job.state, job.completed_at = "done", time.time()
                job.http_status, job.body = 503, {"error": error}
                self._save()

    def _drain(self, queue: _VmQueue) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not queue.tasks:
                    queue.busy = False
                    return
                task = queue.tasks.popleft()
            task()

    def _run_queued(self, job: Job, queued: Queued, ctx: Any) -> None:
        try:
            with self._lock:
                if job.generation != self.generation:
                    return  # the node was reset: the job belongs to a discarded inventory
                try:
                    apply = queued(ctx)
                except ApiError as exc:
                    self._finish(job, error=exc)
                    apply = None
                seconds = self._config.jobSeconds
            if apply is not None:
                if self._stop.wait(seconds):
                    return
                with self._lock:
                    if job.generation != self.generation:
                        return
                    try:
                        self._finish(job, apply())
                    except ApiError as exc:
                        self._finish(job, error=exc)
        except Exception:  # a bug must fail the job, not wedge the VM's queue
            log.exception("job %s (%s) failed", job.uuid, job.api)
            with self._lock:
                self._finish(job, error=ApiError("SYS.1000", f"internal error while running {job.api}"))
