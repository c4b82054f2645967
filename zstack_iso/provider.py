"""The dynamic provider behind IsoAttachment: Pulumi semantics on top of the ZStack client.

Pulumi pickles the provider into every user's state *by reference*: this module's path and the class name
`IsoAttachmentProvider` must never change once released. The instance holds no credentials, clients or
sessions in anything that is pickled; `configure()` builds them inside the provider process only.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from . import host_pool
from .client import ZStackClient
from .config import ConfigurationError, ZStackSettings
from .errors import CLIENT_TIMEOUT, ZStackError, hint_for
from .models import Image, VmCdRom, VmInstance

INPUTS = ("vm_uuid", "iso_uuid", "cdrom_uuid")
# The outputs that say where the ISO is; a refresh that finds them changed rewrites the inputs too.
PLACEMENT = ("vm_uuid", "iso_uuid", "cdrom_uuid", "device_id")
_UUID = re.compile(r"^[0-9a-f]{32}$")
_UUID_HINT = "a ZStack UUID: 32 hexadecimal characters without dashes, e.g. 7105b03e09794680b7ba1027f812c987"


class IsoAttachmentError(Exception):
    """A failure a user can act on; the message names the VM, the ISO and the CD-ROM concerned."""

    def __init__(self, message: str, cause: ZStackError | None = None) -> None:
        if cause is not None:
            message = f"{message}: {_for_pulumi_users(cause)}"  # the cause's text starts with ZStack's error code
        super().__init__(message)
        self.code = cause.code if cause is not None else None


def _for_pulumi_users(cause: ZStackError) -> ZStackError:
    hint = hint_for(cause.code, "stack")  # the client's hints name its arguments; stack config is what users set
    if hint is None:
        return cause
    told = copy.copy(cause)  # the caller's error keeps its own hint
    told.hint = hint
    return told


@contextmanager
def _explained(action: str) -> Iterator[None]:
    """Give a ZStack failure the context a user needs: what was being done, to which VM and ISO."""
    try:
        yield
    except ZStackError as err:
        raise IsoAttachmentError(f"{action} failed", err) from err


class IsoAttachmentProvider(ResourceProvider):
    """Attach an ISO in `create`, detach it in `delete`, read the live VM in `diff` and `read`."""

    def __init__(self) -> None:
        super().__init__()
        self._runtime: _Runtime | None = None

    # Pickled by reference with an empty state: nothing configured ever reaches the Pulumi state.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._runtime = None

    def configure(self, req: ConfigureRequest) -> None:
        level = os.environ.get("ZSTACK_ISO_LOG_LEVEL", "").strip().upper()
        if level:
            _log_to_stderr(level)
        self._runtime = _Runtime.from_config(lambda key: req.config.get(f"zstack:{key}"))
        if self._runtime.configured:
            _widen_host_pool(self._runtime.settings.max_concurrency)

    # -- check ------------------------------------------------------------------------------------------

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = dict(news)
        failures = []
        for key in INPUTS:
            value = news.get(key)
            if _is_unknown(value):
                continue  # a preview: the value comes from another resource and is checked at `up`
            if value is None:
                if key != "cdrom_uuid":
                    failures.append(CheckFailure(key, f"{key} is required: {_UUID_HINT}"))
                continue
            if not isinstance(value, str):
                failures.append(CheckFailure(key, f"{key} must be a string, {_UUID_HINT}; got {_shown(value)}"))
                continue
            normalized = value.strip().lower()
            if not _UUID.match(normalized):
                extra = " (omit cdrom_uuid to let ZStack pick an empty CD-ROM)" if key == "cdrom_uuid" else ""
                failures.append(CheckFailure(key, f"{key} must be {_UUID_HINT}; got {value!r}{extra}"))
                continue
            inputs[key] = normalized
        if not failures:
            self._claim_if_existing(olds, inputs)
        return CheckResult(inputs, failures)

    def _claim_if_existing(self, olds: dict[str, Any], inputs: dict[str, Any]) -> None:
        """An existing resource that keeps its VM and ISO owns them in this deployment from its Check on: the
        engine runs a twin's Check and Create concurrently with this resource's Check and Diff, so the claim
        that Diff records (with the owner token) can come too late to stop the twin adopting the ISO."""
        pair = (inputs.get("vm_uuid"), inputs.get("iso_uuid"))
        if not olds or not all(isinstance(part, str) for part in pair):
            return
        if (str(olds.get("vm_uuid", "")).lower(), str(olds.get("iso_uuid", "")).lower()) == pair:
            self._rt().claim_pending(*pair)

    # -- diff -------------------------------------------------------------------------------------------

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [
            key for key in ("vm_uuid", "iso_uuid") if _is_unknown(news.get(key)) or news.get(key) != olds.get(key)
        ]
        pinned = news.get("cdrom_uuid")
        if _is_unknown(pinned) or (pinned is not None and pinned != olds.get("cdrom_uuid")):
            replaces.append("cdrom_uuid")
        if not replaces:
            # Diff runs in `pulumi up` as well as in a preview: name what it does, not the command.
            where = _where(olds)
            with _explained(f"looking for changes to {where} made outside Pulumi: reading the VM"):
                drift = self._drift(olds)
            if drift:
                pulumi.log.warn(drift)
                replaces.append("iso_uuid")
            else:
                # This resource still owns the pair: a twin declared in the same deployment must not adopt it.
                self._rt().claim_existing(olds["vm_uuid"], olds["iso_uuid"], olds.get("owner_token"))
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def _drift(self, olds: dict[str, Any]) -> str | None:
        """What changed outside Pulumi since the last deployment, in a sentence, or None."""
        vm_uuid, iso_uuid, slot = olds["vm_uuid"], olds["iso_uuid"], olds.get("cdrom_uuid")
        runtime = self._rt()
        vm = runtime.shared_read(vm_uuid)
        where = _where(olds, vm)
        if vm is None:
            return f"{where}: the VM no longer exists; the attachment will be replaced (and fail unless the VM returns)"
        if vm.is_gone:
            return f"{where}: the VM is {vm.state}; the attachment will be replaced"
        holder = _cdrom_holding(vm, iso_uuid)
        was = _slot(slot, olds.get("device_id"))
        if holder is None:
            # Deleting an ISO image detaches it from every VM (docs/out-of-band.md): say so, rather than promise
            # an attach that the next `up` refuses. One image read, only when the ISO is gone from the VM.
            image = runtime.client.get_image(iso_uuid)
            if image is None or image.is_deleted:
                gone = "expunged" if image is None else "deleted (status Deleted)"
                return (
                    f"{where}: the ISO image was {gone} outside Pulumi, which detached it (was in {was}); "
                    f"attaching it again will fail: recover the image, or remove this IsoAttachment"
                )
            return f"{where}: detached outside Pulumi (was in {was}); it will be attached again"
        if slot is not None and holder.uuid != slot:
            return (
                f"{where}: moved outside Pulumi from {was} to {_slot(holder.uuid, holder.device_id)}; "
                "it will be detached and attached again"
            )
        return None

    # -- create -----------------------------------------------------------------------------------------

    def create(self, props: dict[str, Any]) -> CreateResult:
        vm_uuid, iso_uuid, pinned = props["vm_uuid"], props["iso_uuid"], props.get("cdrom_uuid")
        runtime = self._rt()
        purpose = f"attach ISO {iso_uuid}"
        deadline = runtime.deadline()
        with _explained(f"attaching ISO {iso_uuid} to VM {vm_uuid}"), runtime.vm_lock(vm_uuid, deadline, purpose):
            vm = runtime.settled_vm(vm_uuid, purpose, deadline)
            image = runtime.client.get_image(iso_uuid)
            iso = _named("image" if image is not None and not image.is_iso else "ISO", iso_uuid, image and image.name)
            if vm is None or vm.is_gone:
                state = "does not exist" if vm is None else f"is {vm.state}"
                raise IsoAttachmentError(
                    f"cannot attach {iso}: {_named('VM', vm_uuid, vm and vm.name)} {state}; check vm_uuid "
                    "(recover a Destroyed VM first, or remove this IsoAttachment)"
                )
            holder = _cdrom_holding(vm, iso_uuid)
            if holder is not None:
                # Adopting writes nothing, so the image's state does not matter (it may be Disabled by now).
                return self._adopt(runtime, vm, iso_uuid, image, pinned, holder)
            _check_iso(image, iso, vm)
            target = _choose_cdrom(vm, iso, pinned)
            pulumi.log.info(
                f"attaching {iso} to {_named('VM', vm.uuid, vm.name)} ({_slot(target.uuid, target.device_id)})"
            )
            vm = _attach(runtime, vm, iso_uuid, iso, pinned)
            holder = _cdrom_holding(vm, iso_uuid)  # report the slot ZStack really used
            if holder is None:
                raise IsoAttachmentError(
                    f"ZStack reported {iso} attached to {_named('VM', vm_uuid, vm and vm.name)}, but no CD-ROM of "
                    "the VM holds it; "
                    "run `pulumi refresh` and try again"
                )
            token = runtime.claim(vm_uuid, iso_uuid, replace_stale=True)
            pulumi.log.info(
                f"attached {iso} to {_named('VM', vm.uuid, vm.name)} in {_slot(holder.uuid, holder.device_id)}"
            )
            return CreateResult(_id(vm_uuid, iso_uuid), _outputs(vm, iso_uuid, image, holder, token))

    def _adopt(
        self,
        runtime: _Runtime,
        vm: VmInstance,
        iso_uuid: str,
        image: Image | None,
        pinned: str | None,
        holder: VmCdRom,
    ) -> CreateResult:
        where = f"{_named('ISO', iso_uuid, image and image.name)} on {_named('VM', vm.uuid, vm.name)}"
        if pinned is not None and holder.uuid != pinned:
            raise IsoAttachmentError(
                f"{where} is already attached in CD-ROM {holder.uuid} (device {holder.device_id}), not in the "
                f"requested CD-ROM {pinned}; ZStack allows an ISO once per VM: set cdrom_uuid to {holder.uuid}, "
                "or detach the ISO first"
            )
        token = runtime.claim(vm.uuid, iso_uuid)
        if token is None:
            raise IsoAttachmentError(
                f"{where} is declared by two IsoAttachment resources in this deployment; an ISO can be attached "
                "to a VM only once: remove the duplicate declaration"
            )
        pulumi.log.info(
            f"adopted {where}, already attached in {_slot(holder.uuid, holder.device_id)}; "
            "nothing was changed on ZStack"
        )
        return CreateResult(_id(vm.uuid, iso_uuid), _outputs(vm, iso_uuid, image, holder, token))

    # -- read -------------------------------------------------------------------------------------------

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        vm_uuid, iso_uuid = _ids(id_, props)
        runtime = self._rt()
        with _explained(f"refresh of ISO {iso_uuid} on VM {vm_uuid}: reading the VM"):
            vm = runtime.client.get_vm(vm_uuid)
        holder = _cdrom_holding(vm, iso_uuid) if vm is not None and not vm.is_gone else None
        if holder is None:
            runtime.release(vm_uuid, iso_uuid, props.get("owner_token"))
            return ReadResult("", {})
        outputs = _outputs(vm, iso_uuid, None, holder, props.get("owner_token"))
        if props.get("iso_name"):
            outputs["iso_name"] = props["iso_name"]  # a VM read does not name its ISOs
        if all(props.get(key) == outputs[key] for key in PLACEMENT):
            # Unchanged: the stored inputs are still true, and keeping them (pinned or not) means a refresh
            # never flaps against the program's own declaration. Names may change; they are outputs only.
            return ReadResult(_id(vm_uuid, iso_uuid), outputs)
        inputs = {"vm_uuid": vm_uuid, "iso_uuid": iso_uuid, "cdrom_uuid": holder.uuid}
        return ReadResult(_id(vm_uuid, iso_uuid), outputs, inputs)

    # -- update -----------------------------------------------------------------------------------------

    def update(self, _id: str, olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        # Every input change replaces, so there is nothing to update in place; the SDK's default would
        # return no outputs and wipe the state, so keep the ones we have.
        return UpdateResult({k: v for k, v in olds.items() if k != "__provider"})

    # -- delete -----------------------------------------------------------------------------------------

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        vm_uuid, iso_uuid = _ids(id_, props)
        token = props.get("owner_token")
        runtime = self._rt()
        purpose = f"detach ISO {iso_uuid}"
        deadline = runtime.deadline()
        with _explained(f"detaching ISO {iso_uuid} from VM {vm_uuid}"), runtime.vm_lock(vm_uuid, deadline, purpose):
            if runtime.owned_by_another(vm_uuid, iso_uuid, token):
                # A resource of this deployment attached or adopted the same pair after this one was made: a
                # rename without `aliases` creates the new resource before it deletes the old one.
                pulumi.log.info(
                    f"{_where(props)} is now managed by another IsoAttachment of this deployment "
                    "(renamed without aliases?); leaving it attached"
                )
                return
            try:
                vm = runtime.settled_vm(vm_uuid, purpose, deadline)
                where = _where(props, vm)
                if vm is None or vm.is_gone:
                    state = "no longer exists" if vm is None else f"is {vm.state}"
                    pulumi.log.info(f"{where}: the VM {state}; nothing to detach")
                    return
                holder = _cdrom_holding(vm, iso_uuid)
                if holder is None:
                    pulumi.log.info(f"{where}: no longer attached; nothing to detach")
                    return
                pulumi.log.info(f"detaching {where} ({_slot(holder.uuid, holder.device_id)})")
                warn = _resubmit_warning(f"detach ISO {iso_uuid} from VM {vm.uuid}")
                vm = runtime.client.ensure_iso_detached(vm, iso_uuid, on_resubmit=warn)
                if vm is not None and _cdrom_holding(vm, iso_uuid) is not None:
                    raise IsoAttachmentError(
                        f"ZStack reported {where} detached, but it is still attached; run `pulumi refresh` and "
                        "try again"
                    )
                pulumi.log.info(f"detached {where}")
            finally:
                runtime.release(vm_uuid, iso_uuid, token)

    # -- plumbing ---------------------------------------------------------------------------------------

    def _rt(self) -> _Runtime:
        runtime = self._runtime
        if runtime is None:
            # Never configured (a host driven without Configure): read the environment alone.
            runtime = self._runtime = _Runtime.from_config(lambda _key: None)
        return runtime


def _widen_host_pool(workers: int) -> None:
    """Run up to `workers` operations at once instead of the SDK host's 4 (zstack:maxConcurrency)."""
    why = host_pool.widen(workers)
    if why not in (None, host_pool.NOT_THE_SDK_HOST):
        # A Pulumi SDK of another shape: the stock pool still works, only slower on wide stacks.
        pulumi.log.warn(f"zstack:maxConcurrency is not applied, the provider host runs 4 operations at once: {why}")


def _log_to_stderr(level: str) -> None:
    """The provider host has no logging set up; this shows the client's own log lines on stderr."""
    if not isinstance(logging.getLevelName(level), int):
        # A debugging knob must not fail the deployment it was meant to explain.
        pulumi.log.warn(f"ZSTACK_ISO_LOG_LEVEL={level!r} is not DEBUG, INFO, WARNING or ERROR; ignored")
        return
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


# The owner of a pair claimed at Check, before its Diff tells its token (never a real token: those are hex).
_PENDING_OWNER = "pending"


class _Runtime:
    """Everything the provider process builds for itself: settings, one client, per-VM locks, claims."""

    def __init__(self, settings: ZStackSettings | None, problem: ConfigurationError | None) -> None:
        self._settings = settings
        self._problem = problem
        self._client: ZStackClient | None = None
        self._lock = threading.Lock()
        self._vm_locks: dict[str, threading.Lock] = {}
        # (vm, iso) -> owner token of the resource that attached or adopted it in this process.
        self._claims: dict[tuple[str, str], str] = {}
        self._reads = _SharedReads()

    @classmethod
    def from_config(cls, get: Callable[[str], str | None]) -> _Runtime:
        # A configuration problem is reported at the first call that needs the node, not at load time,
        # so that `check` still validates inputs.
        try:
            return cls(ZStackSettings.load(get), None)
        except ConfigurationError as problem:
            return cls(None, problem)

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
    def vm_lock(self, vm_uuid: str, deadline: float, purpose: str) -> Iterator[None]:
        """Serialize this process's writes to one VM (ZStack runs them one at a time anyway, §10)."""
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
            lock.release()

    def claim(self, vm_uuid: str, iso_uuid: str, replace_stale: bool = False) -> str | None:
        """Record that a new resource of this deployment manages (vm, iso) and return its owner token; None
        if another resource already does. `replace_stale`: the ISO was not attached, so any claim is stale."""
        with self._lock:
            if (vm_uuid, iso_uuid) in self._claims and not replace_stale:
                return None
            token = self._claims[(vm_uuid, iso_uuid)] = uuid.uuid4().hex
            return token

    def claim_pending(self, vm_uuid: str, iso_uuid: str) -> None:
        """Record, at its Check, that an existing resource owns (vm, iso); its Diff adds the owner token."""
        with self._lock:
            self._claims.setdefault((vm_uuid, iso_uuid), _PENDING_OWNER)

    def claim_existing(self, vm_uuid: str, iso_uuid: str, token: str | None) -> None:
        """Record that an existing resource (state without a token: made before tokens) owns (vm, iso)."""
        with self._lock:
            if self._claims.get((vm_uuid, iso_uuid)) in (None, _PENDING_OWNER):
                self._claims[(vm_uuid, iso_uuid)] = token or ""

    def owned_by_another(self, vm_uuid: str, iso_uuid: str, token: str | None) -> bool:
        with self._lock:
            owner = self._claims.get((vm_uuid, iso_uuid))
        return owner not in (None, _PENDING_OWNER) and owner != (token or "")

    def release(self, vm_uuid: str, iso_uuid: str, token: str | None) -> None:
        with self._lock:
            if self._claims.get((vm_uuid, iso_uuid)) in (token or "", None):
                self._claims.pop((vm_uuid, iso_uuid), None)

    def settled_vm(self, vm_uuid: str, purpose: str, deadline: float) -> VmInstance | None:
        """The VM once it is in a state that allows ISO operations, waiting out transitions (§13)."""
        vm = self.client.get_vm(vm_uuid)
        if vm is not None and vm.is_transitional:
            pulumi.log.info(f"waiting for VM {vm_uuid} to leave state {vm.state} before it can {purpose}")
            try:
                vm = self.client.wait_for_settled_state(vm_uuid, deadline=deadline)
            except ZStackError as err:
                if err.code != CLIENT_TIMEOUT:
                    raise
                raise IsoAttachmentError(
                    f"cannot {purpose}: {_named('VM', vm_uuid, vm.name)} stayed {vm.state} for more than "
                    f"{self.settings.job_timeout:g} s (zstack:jobTimeout); retry once it is Running or Stopped"
                ) from err
        if vm is None or vm.is_gone or vm.allows_iso_operations:
            return vm
        raise IsoAttachmentError(
            f"cannot {purpose}: {_named('VM', vm_uuid, vm.name)} is in state {vm.state}, and ZStack attaches or "
            "detaches ISOs only in Running, Stopped or Paused; bring the VM back to one of them and retry"
        )

    def shared_read(self, vm_uuid: str) -> VmInstance | None:
        return self._reads.get(vm_uuid, lambda: self.client.get_vm(vm_uuid))


class _SharedReads:
    """Coalesces concurrent reads of one VM: a Diff that arrives while another Diff's read of the same VM is
    in flight waits for that read instead of sending its own. A finished read is never reused, so a Diff
    never sees a result older than the last read in flight when it was called."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, _Read] = {}

    def get(self, key: str, load: Callable[[], Any]) -> Any:
        with self._lock:
            entry = self._in_flight.get(key)
            owner = entry is None
            if owner:
                entry = self._in_flight[key] = _Read()
        if owner:
            try:
                entry.value = load()
            except BaseException as err:
                entry.error = err
            finally:
                with self._lock:
                    del self._in_flight[key]
                entry.ready.set()
        else:
            entry.ready.wait()
        if entry.error is not None:
            raise entry.error
        return entry.value


class _Read:
    __slots__ = ("ready", "value", "error")

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


# -- jobs ------------------------------------------------------------------------------------------------


def _attach(runtime: _Runtime, seen: VmInstance, iso_uuid: str, iso: str, pinned: str | None) -> VmInstance:
    """The attach job, as the client runs it (keyed by `seen`, judged by the node's state), in this provider's words."""
    warn = _resubmit_warning(f"attach ISO {iso_uuid} to VM {seen.uuid}")
    try:
        return runtime.client.ensure_iso_attached(seen, iso_uuid, pinned, on_resubmit=warn)
    except ZStackError as err:
        _raise_for_full(err.vm, iso, err)
        raise


def _resubmit_warning(what: str) -> Callable[[], None]:
    return lambda: pulumi.log.warn(
        f"the management node lost the job to {what} (was it restarted?); submitting it once more"
    )


# -- rules -----------------------------------------------------------------------------------------------


def _check_iso(image: Image | None, iso: str, vm: VmInstance) -> None:
    """Refuse, before any write, an image ZStack would reject or that a strict node refuses (§5.2, §8)."""
    target = _named("VM", vm.uuid, vm.name)
    if image is None:
        raise IsoAttachmentError(f"cannot attach {iso} to {target}: no image with that UUID exists; check iso_uuid")
    if not image.is_iso:
        raise IsoAttachmentError(
            f"cannot attach {iso} to {target}: it is a {image.media_type}, not an ISO; iso_uuid must name an "
            "image whose media type is ISO"
        )
    if image.is_deleted:
        raise IsoAttachmentError(
            f"cannot attach {iso} to {target}: the image was deleted on ZStack (status Deleted); recover it "
            "(RecoverImage) or remove this IsoAttachment"
        )
    if not image.is_enabled_and_ready:
        raise IsoAttachmentError(
            f"cannot attach {iso} to {target}: the image is {image.state} and {image.status}; it must be "
            "Enabled and Ready (enable it, or wait for its download to finish)"
        )


def _choose_cdrom(vm: VmInstance, iso: str, pinned: str | None) -> VmCdRom:
    """The CD-ROM ZStack will use: the pinned one, or the empty one with the lowest device id (§5.2 step 8)."""
    cdroms = vm.cdroms  # in device order
    target = _named("VM", vm.uuid, vm.name)
    if pinned is not None:
        mine = vm.cdrom(pinned)
        if mine is None:
            raise IsoAttachmentError(
                f"cannot attach {iso}: CD-ROM {pinned} is not a CD-ROM of {target} "
                f"(its CD-ROMs: {_describe(cdroms)}); set cdrom_uuid to one of them or omit it"
            )
        if mine.iso_uuid is not None:
            raise IsoAttachmentError(
                f"cannot attach {iso}: CD-ROM {pinned} (device {mine.device_id}) of {target} "
                f"already holds ISO {mine.iso_uuid}; detach that ISO or pin another CD-ROM"
            )
    if not vm.empty_cdroms:
        raise _full_error(target, iso, cdroms)
    return mine if pinned is not None else vm.empty_cdroms[0]


def _raise_for_full(vm: VmInstance | None, iso: str, err: ZStackError) -> None:
    """A failed attach to a VM whose CD-ROMs all hold ISOs now lost a race for the last one (§10)."""
    if vm is not None and vm.cdroms and not vm.empty_cdroms:
        raise _full_error(_named("VM", vm.uuid, vm.name), iso, vm.cdroms, err) from err


def _full_error(target: str, iso: str, cdroms: list[VmCdRom], cause: ZStackError | None = None) -> IsoAttachmentError:
    if not cdroms:
        return IsoAttachmentError(
            f"cannot attach {iso}: {target} has no CD-ROM; add one with CreateVmCdRom "
            "(the VM must be Stopped; at most 3 per VM)",
            cause,
        )
    return IsoAttachmentError(
        f"cannot attach {iso}: {target} has no free CD-ROM (all {len(cdroms)} hold ISOs: "
        f"{_describe(cdroms)}); detach one of them, or add a CD-ROM (the VM must be Stopped; at most 3)",
        cause,
    )


def _describe(cdroms: list[VmCdRom]) -> str:
    if not cdroms:
        return "none"
    return ", ".join(f"{c.uuid} (device {c.device_id}, {c.iso_uuid or 'empty'})" for c in cdroms)


def _cdrom_holding(vm: VmInstance | None, iso_uuid: str) -> VmCdRom | None:
    return None if vm is None else vm.cdrom_with_iso(iso_uuid)


def _outputs(
    vm: VmInstance, iso_uuid: str, image: Image | None, cdrom: VmCdRom, owner_token: str | None
) -> dict[str, Any]:
    outputs: dict[str, Any] = {
        "vm_uuid": vm.uuid,
        "iso_uuid": iso_uuid,
        "cdrom_uuid": cdrom.uuid,
        "device_id": cdrom.device_id,
    }
    # For people reading previews, logs and stack outputs; never compared (names change freely on ZStack).
    if vm.name:
        outputs["vm_name"] = vm.name
    if image is not None and image.name:
        outputs["iso_name"] = image.name
    if owner_token is not None:
        # Tells this resource from an older one for the same pair (see `delete`); state only, never an input.
        outputs["owner_token"] = owner_token
    return outputs


def _named(kind: str, uuid: str, name: str | None) -> str:
    """`VM web-1 (dd4ec5f8…)`: the name a reviewer knows, and enough of the UUID to tell namesakes apart;
    the whole UUID when the name is unknown."""
    return f"{kind} {name} ({uuid[:8]}…)" if name else f"{kind} {uuid}"


def _where(props: dict[str, Any], vm: VmInstance | None = None) -> str:
    """`ISO tools.iso (ff4d2c3e…) on VM lab-vm (9c35a1b2…)`, from stored outputs and, when read, the VM."""
    vm_name = vm.name if vm is not None and vm.name else props.get("vm_name")
    return f"{_named('ISO', props['iso_uuid'], props.get('iso_name'))} on {_named('VM', props['vm_uuid'], vm_name)}"


def _slot(cdrom_uuid: str | None, device_id: Any) -> str:
    """`CD-ROM 13baa35b… (device 0)`."""
    if cdrom_uuid is None:
        return "a CD-ROM"
    device = f" (device {_shown(device_id)})" if device_id is not None else ""
    return f"CD-ROM {cdrom_uuid[:8]}…{device}"


def _id(vm_uuid: str, iso_uuid: str) -> str:
    return f"{vm_uuid}/{iso_uuid}"


def _ids(id_: str, props: dict[str, Any]) -> tuple[str, str]:
    """(vm, iso) from the stored outputs, or from the ID `<vm_uuid>/<iso_uuid>` when they are absent."""
    vm_uuid, iso_uuid = props.get("vm_uuid"), props.get("iso_uuid")
    if vm_uuid and iso_uuid:
        return vm_uuid, iso_uuid
    parts = (id_ or "").lower().split("/")
    if len(parts) != 2 or not all(_UUID.match(p) for p in parts):
        raise IsoAttachmentError(f"invalid IsoAttachment ID {id_!r}: expected '<vm_uuid>/<iso_uuid>'")
    return parts[0], parts[1]


def _shown(value: Any) -> str:
    """A value as the program wrote it: Pulumi sends every number as a float, so 42 arrives as 42.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _is_unknown(value: Any) -> bool:
    return isinstance(value, pulumi.output.Unknown) or value == pulumi.runtime.rpc.UNKNOWN
