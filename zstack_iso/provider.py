"""The dynamic provider behind IsoAttachment: Pulumi semantics on top of the ZStack client.

Pulumi pickles the provider into every user's state *by reference*: this module's path and the class name
`IsoAttachmentProvider` must never change once released. The instance holds no credentials, clients or
sessions in anything that is pickled; `configure()` builds them inside the provider process only, as a
`runtime.Runtime` (settings, the client, per-VM locks, claims, shared reads). This module holds what the resource
means: each method of the provider, the rules it applies before any write, and every message a user reads.
"""

from __future__ import annotations

import os
import re
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

from .errors import CLIENT_TIMEOUT, IsoAttachmentError, ZStackError
from .models import Image, VmCdRom, VmInstance
from .runtime import Runtime, log_to_stderr, widen_host_pool

__all__ = ["IsoAttachmentError", "IsoAttachmentProvider", "format_id", "parse_id"]

INPUTS = ("vm_uuid", "iso_uuid", "cdrom_uuid")
# The outputs that say where the ISO is; a refresh that finds them changed rewrites the inputs too.
PLACEMENT = ("vm_uuid", "iso_uuid", "cdrom_uuid", "device_id")
_UUID = re.compile(r"^[0-9a-f]{32}$")
_UUID_HINT = "a ZStack UUID: 32 hexadecimal characters without dashes, e.g. 7105b03e09794680b7ba1027f812c987"


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
        self._runtime: Runtime | None = None

    # Pickled by reference with an empty state: nothing configured ever reaches the Pulumi state.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._runtime = None

    def configure(self, req: ConfigureRequest) -> None:
        level = os.environ.get("ZSTACK_ISO_LOG_LEVEL", "").strip().upper()
        if level:
            log_to_stderr(level)
        self._runtime = Runtime.from_config(lambda key: req.config.get(f"zstack:{key}"))
        if self._runtime.configured:
            widen_host_pool(self._runtime.settings.max_concurrency)

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
            self._rt().claims.claim_pending(pair)

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
            with _explained(f"looking for changes to {where} made outside Pulumi: reading the VM and the ISO image"):
                drift = self._drift(olds)
            if drift:
                pulumi.log.warn(drift)
                replaces.append("iso_uuid")
            else:
                # This resource still owns the pair: a twin declared in the same deployment must not adopt it.
                self._rt().claims.claim_existing((olds["vm_uuid"], olds["iso_uuid"]), olds.get("owner_token"))
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def _drift(self, olds: dict[str, Any]) -> str | None:
        """What changed outside Pulumi since the last deployment, in a sentence, or None."""
        vm_uuid, iso_uuid, slot = olds["vm_uuid"], olds["iso_uuid"], olds.get("cdrom_uuid")
        runtime = self._rt()
        vm = runtime.reads.get((vm_uuid, iso_uuid))
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
        with _explained(f"attaching ISO {iso_uuid} to VM {vm_uuid}"), runtime.writing_to(vm_uuid, deadline, purpose):
            vm = _settled_vm(runtime, vm_uuid, purpose, deadline)
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
            token = runtime.claims.claim((vm_uuid, iso_uuid), replace_stale=True)
            pulumi.log.info(
                f"attached {iso} to {_named('VM', vm.uuid, vm.name)} in {_slot(holder.uuid, holder.device_id)}"
            )
            return CreateResult(format_id(vm_uuid, iso_uuid), _outputs(vm, iso_uuid, image, holder, token))

    def _adopt(
        self,
        runtime: Runtime,
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
        token = runtime.claims.claim((vm.uuid, iso_uuid))
        if token is None:
            raise IsoAttachmentError(
                f"{where} is declared by two IsoAttachment resources in this deployment; an ISO can be attached "
                "to a VM only once: remove the duplicate declaration"
            )
        pulumi.log.info(
            f"adopted {where}, already attached in {_slot(holder.uuid, holder.device_id)}; "
            "nothing was changed on ZStack"
        )
        return CreateResult(format_id(vm.uuid, iso_uuid), _outputs(vm, iso_uuid, image, holder, token))

    # -- read -------------------------------------------------------------------------------------------

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        vm_uuid, iso_uuid = _ids(id_, props)
        runtime = self._rt()
        with _explained(f"refresh of ISO {iso_uuid} on VM {vm_uuid}: reading the VM"):
            vm = runtime.client.get_vm(vm_uuid)
        holder = _cdrom_holding(vm, iso_uuid) if vm is not None and not vm.is_gone else None
        if holder is None:
            runtime.claims.release((vm_uuid, iso_uuid), props.get("owner_token"))
            return ReadResult("", {})
        outputs = _outputs(vm, iso_uuid, None, holder, props.get("owner_token"))
        if props.get("iso_name"):
            outputs["iso_name"] = props["iso_name"]  # a VM read does not name its ISOs
        if all(props.get(key) == outputs[key] for key in PLACEMENT):
            # Unchanged: the stored inputs are still true, and keeping them (pinned or not) means a refresh
            # never flaps against the program's own declaration. Names may change; they are outputs only.
            return ReadResult(format_id(vm_uuid, iso_uuid), outputs)
        inputs = {"vm_uuid": vm_uuid, "iso_uuid": iso_uuid, "cdrom_uuid": holder.uuid}
        return ReadResult(format_id(vm_uuid, iso_uuid), outputs, inputs)

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
        with _explained(f"detaching ISO {iso_uuid} from VM {vm_uuid}"), runtime.writing_to(vm_uuid, deadline, purpose):
            if runtime.claims.owned_by_another((vm_uuid, iso_uuid), token):
                # A resource of this deployment attached or adopted the same pair after this one was made: a
                # rename without `aliases` creates the new resource before it deletes the old one.
                pulumi.log.info(
                    f"{_where(props)} is now managed by another IsoAttachment of this deployment "
                    "(renamed without aliases?); leaving it attached"
                )
                return
            try:
                vm = _settled_vm(runtime, vm_uuid, purpose, deadline)
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
                runtime.claims.release((vm_uuid, iso_uuid), token)

    # -- plumbing ---------------------------------------------------------------------------------------

    def _rt(self) -> Runtime:
        runtime = self._runtime
        if runtime is None:
            # Never configured (a host driven without Configure): read the environment alone.
            runtime = self._runtime = Runtime.from_config(lambda _key: None)
        return runtime


def _settled_vm(runtime: Runtime, vm_uuid: str, purpose: str, deadline: float) -> VmInstance | None:
    """The VM once it is in a state that allows ISO operations, waiting out transitions (§13)."""
    vm = runtime.client.get_vm(vm_uuid)
    if vm is not None and vm.is_transitional:
        pulumi.log.info(f"waiting for VM {vm_uuid} to leave state {vm.state} before it can {purpose}")
        try:
            vm = runtime.client.wait_for_settled_state(vm_uuid, deadline=deadline)
        except ZStackError as err:
            if err.code != CLIENT_TIMEOUT:
                raise
            raise IsoAttachmentError(
                f"cannot {purpose}: {_named('VM', vm_uuid, vm.name)} stayed {vm.state} for more than "
                f"{runtime.settings.job_timeout:g} s (zstack:jobTimeout); retry once it is Running or Stopped"
            ) from err
    if vm is None or vm.is_gone or vm.allows_iso_operations:
        return vm
    raise IsoAttachmentError(
        f"cannot {purpose}: {_named('VM', vm_uuid, vm.name)} is in state {vm.state}, and ZStack attaches or "
        "detaches ISOs only in Running, Stopped or Paused; bring the VM back to one of them and retry"
    )


# -- jobs ------------------------------------------------------------------------------------------------


def _attach(runtime: Runtime, seen: VmInstance, iso_uuid: str, iso: str, pinned: str | None) -> VmInstance:
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


def format_id(vm_uuid: str, iso_uuid: str) -> str:
    """An IsoAttachment's ID: `<vm_uuid>/<iso_uuid>`."""
    return f"{vm_uuid}/{iso_uuid}"


def parse_id(id_: Any) -> tuple[str, str]:
    """(vm_uuid, iso_uuid) from an ID `<vm_uuid>/<iso_uuid>` (any case, surrounding spaces ignored)."""
    parts = str(id_ or "").strip().lower().split("/")
    if len(parts) != 2 or not all(_UUID.match(p) for p in parts):
        raise IsoAttachmentError(
            f"invalid IsoAttachment ID {id_!r}: expected '<vm_uuid>/<iso_uuid>', two ZStack UUIDs "
            "(32 hexadecimal characters each)"
        )
    return parts[0], parts[1]


def _ids(id_: str, props: dict[str, Any]) -> tuple[str, str]:
    """(vm, iso) from the stored outputs, or from the ID when they are absent (`pulumi import` sends none)."""
    vm_uuid, iso_uuid = props.get("vm_uuid"), props.get("iso_uuid")
    if vm_uuid and iso_uuid:
        return vm_uuid, iso_uuid
    return parse_id(id_)


def _shown(value: Any) -> str:
    """A value as the program wrote it: Pulumi sends every number as a float, so 42 arrives as 42.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _is_unknown(value: Any) -> bool:
    return isinstance(value, pulumi.output.Unknown) or value == pulumi.runtime.rpc.UNKNOWN
