"""VM lifecycle (§13), UpdateVmInstance with the ISO order tag, and the control API's state holds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .errors import PARAM_VALIDATOR, ApiError, argerr, invalid_value, operr, state_error, success_if_not_existing
from .isos import iso_install_path
from .java import find_tag_value, java_trim
from .jobs import Apply, Job
from .records import VmInstance
from .rules import Rules
from .seed import VM_STATES
from .sessions import Auth


@dataclass(frozen=True)
class Lifecycle:
    """A lifecycle API (§13): allowed states, states where the call is a no-op success, transitional and final
    state."""

    message: str
    allowed: tuple[str, ...]
    noop: tuple[str, ...]
    transitional: str | None
    final: str | None  # None: the VM is gone (expunge)
    returns_inventory: bool


LIFECYCLE = {
    "start": Lifecycle("org.zstack.header.vm.APIStartVmInstanceMsg", ("Stopped", "Running"), ("Running",),
                       "Starting", "Running", True),
    "stop": Lifecycle("org.zstack.header.vm.APIStopVmInstanceMsg", ("Running", "Stopped", "Paused", "Unknown"),
                      ("Stopped",), "Stopping", "Stopped", True),
    "reboot": Lifecycle("org.zstack.header.vm.APIRebootVmInstanceMsg", ("Running",), (), "Rebooting", "Running",
                        True),
    "destroy": Lifecycle("org.zstack.header.vm.APIDestroyVmInstanceMsg",
                         ("Running", "Stopped", "Paused", "Unknown", "Crashed", "Created", "Destroyed"),
                         ("Destroyed",), "Destroying", "Destroyed", False),
    "recover": Lifecycle("org.zstack.header.vm.APIRecoverVmInstanceMsg", ("Destroyed",), (), None, "Stopped",
                         True),
    "expunge": Lifecycle("org.zstack.header.vm.APIExpungeVmInstanceMsg", ("Destroyed",), (), "Expunging", None,
                         False),
}  # fmt: skip


class VmRules(Rules):
    def change_state(self, job: Job, auth: Auth, action: str, vm_uuid: str, *, stop_type: str | None = None) -> None:
        """start, stop, reboot, destroy, recover or expunge; transitional states last for the job's duration."""
        rule = LIFECYCLE[action]
        vm_uuid = java_trim(vm_uuid)  # APIMessage.java:204-226 @ 5a29293: String fields are trimmed first
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            if action == "destroy" and vm_uuid not in inv.vms:
                # APIDestroyVmInstanceMsg.java:48 @ 5a29293: successIfResourceNotExisting (SYS.1003 or success)
                success_if_not_existing(vm_uuid)
            inv.find_vm(vm_uuid, "uuid")  # SYS.1003
            if action == "stop" and stop_type is not None and stop_type not in ("grace", "cold"):
                # §13: @APIParam(validValues) is checked by the parameter validator: SYS.1007
                raise invalid_value("type", ("grace", "cold"), stop_type)
            self.identity.check(auth)
            return vm_uuid, None

        def queued(_: None) -> Apply:
            vm = inv.find_vm(vm_uuid, "uuid")
            if vm.state not in rule.allowed:  # SYS.1006 + cause VM.1010
                raise state_error(vm.state, rule.allowed, rule.message)
            noop = vm.state in rule.noop
            if not noop and rule.transitional:
                if vm.settled_state is None:
                    vm.settled_state = vm.state
                vm.state = rule.transitional
            return lambda: self._settle(vm, rule, noop)

        self.jobs.submit(job, intercept, queued)

    def _settle(self, vm: VmInstance, rule: Lifecycle, noop: bool) -> dict[str, Any]:
        """The end of a lifecycle job: the final state (or the VM gone), the host, the ISOs downloaded on start."""
        inv = self.inventory
        if not noop:
            vm.settled_state = None
            if rule.final is None:  # expunge: the VM and its CD-ROMs are gone
                del inv.vms[vm.uuid]
                for cd in inv.cdroms_of(vm.uuid):
                    del inv.cdroms[cd.uuid]
                return {}
            vm.state = rule.final
            vm.lastOpDate = time.time()
            if rule.final == "Running":
                vm.hostUuid = vm.lastHostUuid
                for cd in inv.cdroms_of(vm.uuid):  # the ISO is downloaded to the host on start
                    if cd.isoUuid and not cd.isoInstallPath:
                        cd.isoInstallPath = iso_install_path(cd.isoUuid)
            else:
                if vm.hostUuid:
                    vm.lastHostUuid = vm.hostUuid
                vm.hostUuid = None
        return {"inventory": inv.vm_inventory(vm)} if rule.returns_inventory else {}

    def update(
        self,
        job: Job,
        auth: Auth,
        vm_uuid: str,
        name: str | None,
        description: str | None,
        system_tags: list[str],
    ) -> None:
        """UpdateVmInstance with name, description and the ISO order tag `iso::<iso>::<deviceId>` (point 11).

        APIUpdateVmInstanceMsg.java:22-41 and VmInstanceBase.java:5580-5642 @ 5a29293: the internal
        UpdateVmInstanceMsg runs in the VM's queue with no state check (VmInstanceApiInterceptor.java:489-555
        returns early without cpuNum/memorySize). Flow `update-vm-properties-without-cpu-and-memory`
        (L5420-5578) first saves name/description, then calls updateVmIsoFirstOrder (L5652-5706), database only:
        the ISO's CD-ROM and the lowest-deviceId CD-ROM swap their ISOs. Reproduced as the node runs it:
        - the tag's deviceId is ignored; only the first tag matching iso::{iso}::{deviceId} counts;
        - an ISO not on the VM is SYS.1006, after name/description were saved;
        - a CD-ROM without ISO before the ISO's one (the stream's v.getIsoUuid().equals(...), L5681) is a
          NullPointerException: SYS.1000 without details (SimpleFlowChain.java:384-388), names saved too;
        - the ISO's former CD-ROM gets the other ISO, but its isoInstallPath is overwritten with the other CD-ROM's
          protocol and its own protocol stays (L5695-5697).
        """
        vm_uuid = java_trim(vm_uuid)  # APIMessage.java:204-226
        iso_uuid = find_tag_value(system_tags, "iso::{iso}::{deviceId}", "iso")  # VmSystemTags.java:73-77
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            inv.find_vm(vm_uuid, "uuid")  # SYS.1003
            for field_name, value, limit in (("name", name, 255), ("description", description, 2048)):
                if value is not None and len(value) > limit:  # ApiMessageParamValidator.java:29-35: SYS.1007
                    raise argerr(
                        f"field[{field_name}] of message[{PARAM_VALIDATOR}] exceeds max length of string. "
                        f"expected was <= {limit}, actual was {len(value)}"
                    )
            self.identity.check(auth)
            return vm_uuid, None

        def queued(_: None) -> Apply:
            vm = inv.find_vm(vm_uuid, "uuid")

            def apply() -> dict[str, Any]:
                if name is not None or description is not None:
                    if name is not None:
                        vm.name = name
                    if description is not None:
                        vm.description = description
                    vm.lastOpDate = time.time()
                if iso_uuid is not None:
                    self._move_iso_first(vm, iso_uuid)
                return {"inventory": inv.vm_inventory(vm)}

            return apply

        self.jobs.submit(job, intercept, queued)

    def _move_iso_first(self, vm: VmInstance, iso_uuid: str) -> None:
        """VmInstanceBase.updateVmIsoFirstOrder (L5652-5706 @ 5a29293), bugs included (see update)."""
        cdroms = self.inventory.cdroms_of(vm.uuid)  # ordered by deviceId ASC, as the node's query
        if iso_uuid not in [c.isoUuid for c in cdroms if c.isoUuid]:
            raise operr(f"ISO[uuid:{iso_uuid}] is not attached to VM[uuid:{vm.uuid}]")  # L5666
        if len(cdroms) <= 1 or cdroms[0].isoUuid == iso_uuid:
            return
        source = None
        for cd in cdroms:  # stream().filter(v -> v.getIsoUuid().equals(isoUuid)).findAny()
            if cd.isoUuid is None:
                raise ApiError("SYS.1000", None)  # NullPointerException: inerr(null), no details
            if cd.isoUuid == iso_uuid:
                source = cd
                break
        assert source is not None
        target = cdroms[0]
        target_iso, target_protocol = target.isoUuid, target.protocol
        target.isoUuid, target.isoInstallPath = source.isoUuid, source.isoInstallPath
        target.protocol = source.protocol
        source.isoUuid = target_iso
        source.isoInstallPath = target_protocol  # setIsoInstallPath(path) then setIsoInstallPath(protocol)
        now = time.time()
        target.lastOpDate = source.lastOpDate = now

    def hold_state(self, vm_uuid: str, state: str, seconds: float) -> dict[str, Any]:
        """The control API: put a VM in `state` for `seconds`, then back to its former state (if nothing changed it
        meanwhile)."""
        if state not in VM_STATES:
            raise ValueError(f"state must be one of {sorted(VM_STATES)}")
        with self.lock:
            vm = self.inventory.vms.get(vm_uuid)
            if vm is None:
                raise KeyError(vm_uuid)
            former = vm.state
            if vm.settled_state is None:
                vm.settled_state = former
            vm.state = state
            generation = self.jobs.generation

        def restore() -> None:
            with self.lock:
                current = self.inventory.vms.get(vm_uuid)
                if generation != self.jobs.generation or current is not vm or vm.state != state:
                    return
                vm.state = former
                if vm.settled_state == former:
                    vm.settled_state = None

        self.jobs.later(seconds, restore)
        return {"uuid": vm_uuid, "state": state, "formerState": former, "seconds": seconds}
