"""What the provider process builds for itself: settings, one client, per-VM locks, claims and shared reads.

Nothing here is pickled into a Pulumi state: `IsoAttachmentProvider.configure()` takes the provider process's
`Runtime` for its settings (the process is the SDK's `python -m pulumi.dynamic` host, which the CLI starts for
each preview and each update). The rules of ISO attachment and every message about them live in `provider.py`.
"""

from __future__ import annotations

import atexit
import copy
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pulumi

from . import host_pool
from .client import ZStackClient
from .config import ConfigurationError, ZStackSettings
from .errors import IsoAttachmentError
from .models import VmInstance

Pair = tuple[str, str]  # (vm_uuid, iso_uuid)

# The owner of a pair claimed at Check, before its Diff tells its token (never a real token: those are hex).
_PENDING_OWNER = "pending"


class Runtime:
    """Settings, one client, per-VM locks, claims and shared VM reads for one provider process."""

    def __init__(self, settings: ZStackSettings | None, problem: ConfigurationError | None) -> None:
        self._settings = settings
        self._problem = problem
        self._client: ZStackClient | None = None
        self._lock = threading.Lock()
        self._vm_locks: dict[str, threading.Lock] = {}
        self.claims = Claims()
        self.reads = SharedReads(lambda vm_uuid: self.client.get_vm(vm_uuid))

    @classmethod
    def from_config(cls, get: Callable[[str], str | None]) -> Runtime:
        """The process's runtime for the settings `get` gives (`get("endpoint")` returns the stack config
        `zstack:endpoint`, None when unset).

        Every provider instance configured with the same settings shares one runtime. The SDK host loads one
        instance per distinct `__provider` string, and a state written under another Python, SDK or dill release
        holds another string than the program: a Diff or Create runs on the program's instance, a Delete on the
        state's. Their claims, VM locks, reads and session must still be one. A configuration problem is
        reported at the first call that needs the node, not here, so that `check` still validates inputs."""
        try:
            settings = ZStackSettings.load(get)
        except ConfigurationError as problem:
            return cls(None, problem)
        with _SHARED_LOCK:
            runtime = _SHARED.get(settings)
            if runtime is None:
                runtime = _SHARED[settings] = cls(settings, None)
            return runtime

    @property
    def configured(self) -> bool:
        return self._settings is not None

    @property
    def settings(self) -> ZStackSettings:
        if self._settings is None:
            raise IsoAttachmentError(f"ZStack provider is not configured: {self._problem}")
        return self._settings

    @property
    def client(self) -> ZStackClient:
        settings = self.settings
        with self._lock:
            if self._client is None:
                self._client = ZStackClient(settings)
                # Log the session out when the host exits (the node caps live sessions per account, §1.1).
                atexit.register(self._client.close)
            return self._client

    def deadline(self) -> float:
        """One deadline for everything a call waits for: the VM's lock, its transitions and the job."""
        return time.monotonic() + self.settings.job_timeout

    @contextmanager
    def writing_to(self, vm_uuid: str, deadline: float, purpose: str) -> Iterator[None]:
        """Serialize this process's writes to one VM (ZStack runs them one at a time anyway, §10); a read of the
        VM shared before the write is not served to anyone after it."""
        with self._lock:
            lock = self._vm_locks.setdefault(vm_uuid, threading.Lock())
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise IsoAttachmentError(
                f"cannot {purpose}: other operations on VM {vm_uuid} in this deployment took more than "
                f"{self.settings.job_timeout:g} s (zstack:jobTimeout); run the deployment again, or raise the timeout"
            )
        try:
            yield
        finally:
            self.reads.forget(vm_uuid)
            lock.release()


# One runtime per distinct settings in this process (settings compare every field, secrets included).
_SHARED: dict[ZStackSettings, Runtime] = {}
_SHARED_LOCK = threading.Lock()


def forget_runtimes() -> None:
    """Make providers configured from now on start a runtime afresh (claims, locks, reads, client), as a new
    process would. For a process that outlives deployments, such as a test suite that resets its simulator."""
    with _SHARED_LOCK:
        _SHARED.clear()


class Claims:
    """Which resource of this deployment manages each (vm, iso) pair, by owner token.

    Two resources can name the same pair: a twin declared by mistake, or a resource renamed without `aliases`,
    which the engine creates before it deletes the old one. The first to claim a pair owns it; `create` of a
    twin is refused, and `delete` of the old name leaves the ISO attached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[Pair, str] = {}

    def claim(self, pair: Pair, replace_stale: bool = False) -> str | None:
        """Record that a new resource manages `pair` and return its owner token; None if another resource already
        does. `replace_stale`: the ISO was not attached, so any claim is stale."""
        with self._lock:
            if pair in self._owners and not replace_stale:
                return None
            token = self._owners[pair] = uuid.uuid4().hex
            return token

    def claim_pending(self, pair: Pair) -> None:
        """Record, at its Check, that an existing resource owns `pair`; its Diff adds the owner token."""
        with self._lock:
            self._owners.setdefault(pair, _PENDING_OWNER)

    def claim_existing(self, pair: Pair, token: str | None) -> None:
        """Record that an existing resource (state without a token: made before tokens) owns `pair`."""
        with self._lock:
            if self._owners.get(pair) in (None, _PENDING_OWNER):
                self._owners[pair] = token or ""

    def owned_by_another(self, pair: Pair, token: str | None) -> bool:
        with self._lock:
            owner = self._owners.get(pair)
        return owner not in (None, _PENDING_OWNER) and owner != (token or "")

    def release(self, pair: Pair, token: str | None) -> None:
        with self._lock:
            if self._owners.get(pair) in (token or "", None):
                self._owners.pop(pair, None)


class SharedReads:
    """One read of a VM serves every attachment on it once: the Diffs of one deployment share it.

    A preview of three attachments on each of 34 VMs reads each VM once, in whatever order the engine asks. A
    read is never served after `max_age` seconds, nor after this process wrote to the VM (`forget`), nor when it
    failed, nor again to an attachment that already had it (unless it is still in flight when asked).

    The CLI starts a new provider process for each preview and each update, so a read never outlives its
    deployment there. A host that outlives deployments (the tests' stand-in) can serve the next deployment's
    first Diffs a read from the previous one, for up to `max_age`, until an attachment that already had it asks.
    """

    def __init__(
        self,
        load: Callable[[str], VmInstance | None],
        max_age: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._reads: dict[str, _Read] = {}

    def get(self, pair: Pair) -> VmInstance | None:
        vm_uuid = pair[0]
        with self._lock:
            read = self._reads.get(vm_uuid)
            if read is None or not read.serves(pair, self._clock() - self._max_age):
                read = self._reads[vm_uuid] = _Read(self._clock())
                owner = True
            else:
                owner = False
            read.served.add(pair)
        if owner:
            try:
                read.value = self._load(vm_uuid)
            except BaseException as err:
                read.error = err
                self.forget(vm_uuid, read)
            finally:
                read.ready.set()
        else:
            read.ready.wait()
        if read.error is not None:
            raise read.error if owner else copy.copy(read.error)  # each thread raises its own object
        return read.value

    def forget(self, vm_uuid: str, read: _Read | None = None) -> None:
        """Serve no earlier read of the VM again (only `read`, when given)."""
        with self._lock:
            if read is None or self._reads.get(vm_uuid) is read:
                self._reads.pop(vm_uuid, None)


class _Read:
    __slots__ = ("started", "ready", "served", "value", "error")

    def __init__(self, started: float) -> None:
        self.started = started
        self.ready = threading.Event()
        self.served: set[Pair] = set()
        self.value: Any = None
        self.error: BaseException | None = None

    def serves(self, pair: Pair, not_before: float) -> bool:
        if not self.ready.is_set():
            return True  # in flight: it answers for the VM as of now
        return self.error is None and pair not in self.served and self.started >= not_before


def widen_host_pool(workers: int) -> None:
    """Run up to `workers` operations at once instead of the SDK host's 4 (zstack:maxConcurrency)."""
    why = host_pool.widen(workers)
    if why not in (None, host_pool.NOT_THE_SDK_HOST):
        # A Pulumi SDK of another shape: the stock pool still works, only slower on wide stacks.
        pulumi.log.warn(f"zstack:maxConcurrency is not applied, the provider host runs 4 operations at once: {why}")


def log_to_stderr(level: str) -> None:
    """The provider host has no logging set up; this shows the client's own log lines on stderr."""
    if not isinstance(logging.getLevelName(level), int):
        # A debugging knob must not fail the deployment it was meant to explain.
        pulumi.log.warn(f"ZSTACK_ISO_LOG_LEVEL={level!r} is not DEBUG, INFO, WARNING or ERROR; ignored")
        return
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
