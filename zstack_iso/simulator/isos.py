"""ISO attach and detach (§5, §6): the rules of §5.2 and §6.2 in the order the node runs them, codes beside."""

from __future__ import annotations

import time
from typing import Any

from .errors import argerr, operr, state_error
from .java import find_tag_value
from .jobs import Apply, Job
from .records import Image, ImageBackupStorageRef, VmInstance
from .rules import Rules
from .sessions import Auth

# §5.2 step 4 / §6.2 step 3: states in which the VM queue accepts ISO operations.
ISO_OP_STATES = ("Running", "Stopped", "Paused")


def iso_install_path(iso_uuid: str) -> str:
    return f"/zstack_ps/imagecache/iso/{iso_uuid}/{iso_uuid}.iso"


def check_iso_usable(iso: Image) -> None:
    """strictAttach only: the simulator's former rule (an ISO must be Enabled and Ready), SYS.1006."""
    if iso.state != "Enabled" or iso.status != "Ready":
        raise operr(
            f"ISO[uuid:{iso.uuid}, name:{iso.name}] cannot be attached: it is {iso.state} and "
            f"{iso.status}, an ISO must be Enabled and Ready"
        )


def check_iso_downloadable(vm: VmInstance, iso: Image, pairs: list[tuple[ImageBackupStorageRef, Any]], ps: str) -> None:
    """VmDownloadIsoFlow.java:52-77 @ 5a29293: ImageBackupStorageSelector (L56-72) takes the first Connected
    backup storage of the zone whose ref is not Deleted; none is SYS.1006 with the node's text."""
    selected = next((ref for ref, bs in pairs if ref.status != "Deleted" and bs.get("status") == "Connected"), None)
    if selected is None:
        raise operr(
            f"cannot find the iso[uuid:{iso.uuid}] in any connected backup storage attached to the "
            f"zone[uuid:{vm.zoneUuid}]. check below:\n"
            f"1. if the backup storage is attached to the zone where the VM[name: {vm.name}, uuid:{vm.uuid}] "
            f"is running\n2. if the backup storage is in connected status, if not, try reconnecting it"
        )
    if selected.status != "Ready":
        # The flow then passes no Ready ref to the primary storage's download (L69-77); what a node answers was
        # not traced (UNCONFIRMED): the simulator fails the download with its own wording.
        raise operr(
            f"cannot download the iso[uuid:{iso.uuid}] to the primary storage[uuid:{ps}]: it is "
            f"{selected.status} on the backup storage[uuid:{selected.backupStorageUuid}]"
        )


class IsoRules(Rules):
    def attach(self, job: Job, auth: Auth, vm_uuid: str, iso_uuid: str, system_tags: list[str]) -> None:
        """§5.2. By default as the open-source node (VmInstanceApiInterceptor.java:764-796, VmInstanceBase.java:
        4826-5004 @ 5a29293): no check of the ISO's state or status, and a cdromUuid:: tag may name any VM's
        CD-ROM, which then gets the ISO. `strictAttach` restores the simulator's former, stricter answers."""
        cdrom_tag = find_tag_value(system_tags, "cdromUuid::{cdromUuid}", "cdromUuid")  # VmSystemTags.java:159-160
        strict = self.config.strictAttach
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            inv.find_vm(vm_uuid, "vmInstanceUuid")  # §5.2 step 1: SYS.1003
            iso = inv.find_image(iso_uuid, "isoUuid")  # §5.2 step 1: SYS.1003
            self.identity.check(auth)  # §5.2 step 2: ID.1001
            if iso_uuid in inv.isos_of(vm_uuid):  # §5.2 step 3a: SYS.1006
                raise operr(f"VM[uuid:{vm_uuid}] already has an ISO[uuid:{iso_uuid}] attached")
            if iso.mediaType != "ISO":  # §5.2 step 3b: SYS.1007 (trailing space is ZStack's)
                raise argerr(f"Unsupported Image Media Type: [{iso.mediaType}] ")
            if strict:
                check_iso_usable(iso)
            if cdrom_tag is not None:  # §5.2 step 3c (VmInstanceApiInterceptor.java:778-796)
                cd = inv.cdroms.get(cdrom_tag)
                if cd is None:
                    raise operr(f"The cdRom[uuid:{cdrom_tag}] does not exist")  # SYS.1006
                if strict and cd.vmInstanceUuid != vm_uuid:  # not checked by the open-source node
                    raise operr(
                        f"The cdRom[uuid:{cdrom_tag}] belongs to VM[uuid:{cd.vmInstanceUuid}], "
                        f"not to VM[uuid:{vm_uuid}]"
                    )
                if cd.isoUuid:
                    raise operr(f"VM[uuid:{vm_uuid}] cdRom[uuid:{cdrom_tag}] has mounted the ISO")  # SYS.1006
            return vm_uuid, None

        self.jobs.submit(job, intercept, lambda _: self._attach_in_queue(vm_uuid, iso_uuid, cdrom_tag, strict))

    def _attach_in_queue(self, vm_uuid: str, iso_uuid: str, cdrom_tag: str | None, strict: bool) -> Apply:
        """§5.2 steps 4-10, in the VM's queue."""
        inv = self.inventory
        vm = inv.find_vm(vm_uuid, "vmInstanceUuid")
        iso = inv.find_image(iso_uuid, "isoUuid")
        if vm.state not in ISO_OP_STATES:  # §5.2 step 4: SYS.1006 + cause VM.1010
            raise state_error(vm.state, ISO_OP_STATES, "org.zstack.header.vm.AttachIsoToVmInstanceMsg")
        pairs = inv.zone_backup_storages(vm, iso)
        ps = inv.primary_storage_of(vm)
        if not pairs:  # §5.2 step 5 (checkIfIsoAttachable does not look at the refs' status): SYS.1006
            raise operr(
                f"the ISO[uuid:{iso_uuid}] is on backup storage that is not compatible of the primary "
                f"storage[uuid:{ps}] where the VM[name:{vm.name}, uuid:{vm_uuid}] is on"
            )
        cdroms = inv.cdroms_of(vm_uuid)
        if any(c.isoUuid == iso_uuid for c in cdroms):  # §5.2 step 6 (re-check; races, §10): SYS.1006
            raise operr(f"VM[uuid:{vm_uuid}] has attached ISO[uuid:{iso_uuid}]")
        if not any(c.isoUuid is None for c in cdroms):  # §5.2 step 6: SYS.1006, also with zero CD-ROMs
            raise operr(f"All vm[uuid:{vm_uuid}] CD-ROMs have mounted ISO")
        if cdrom_tag is not None:
            cd = inv.cdroms.get(cdrom_tag)
            if cd is None:  # deleted meanwhile: the node's dbf.findByUuid would give null (UNCONFIRMED)
                raise operr(f"The cdRom[uuid:{cdrom_tag}] does not exist")
            if strict and cd.isoUuid:  # the node does not re-check it in the queue: a race overwrites
                raise operr(f"VM[uuid:{vm_uuid}] cdRom[uuid:{cdrom_tag}] has mounted the ISO")
        running = vm.state in ("Running", "Paused")
        if running:  # §5.2 step 10: VmDownloadIsoFlow (database only for a Stopped VM)
            check_iso_downloadable(vm, iso, pairs, ps)

        def apply() -> dict[str, Any]:
            # §5.2 step 8: the tagged CD-ROM (of whichever VM), else the empty one with the lowest deviceId
            empty = [c for c in inv.cdroms_of(vm_uuid) if c.isoUuid is None]
            target = inv.cdroms.get(cdrom_tag) if cdrom_tag is not None else empty[0] if empty else None
            if target is None:
                raise operr(f"The cdRom[uuid:{cdrom_tag}] does not exist")
            target.isoUuid = iso_uuid
            # §5.2 steps 9-10: a Stopped VM is changed in the database only (no install path)
            target.isoInstallPath = iso_install_path(iso_uuid) if running else None
            target.lastOpDate = vm.lastOpDate = time.time()
            return {"inventory": inv.vm_inventory(vm)}  # this VM, even when the tag named another VM's

        return apply

    def detach(self, job: Job, auth: Auth, vm_uuid: str, iso_uuid: str | None) -> None:
        """§6.2."""
        inv = self.inventory

        def intercept() -> tuple[str, str | None]:
            inv.find_vm(vm_uuid, "vmInstanceUuid")  # §6.2 step 1: SYS.1003
            self.identity.check(auth)  # §6.2 step 1: ID.1001
            target = iso_uuid
            if target is None:  # §6.2 step 2
                attached = inv.isos_of(vm_uuid)
                if len(attached) > 1:  # SYS.1006
                    raise operr(f"VM[uuid:{vm_uuid}] has multiple ISOs attached, specify the isoUuid when detaching")
                target = attached[0] if attached else None
            return vm_uuid, target

        def queued(target: str | None) -> Apply:
            vm = inv.find_vm(vm_uuid, "vmInstanceUuid")
            if vm.state not in ISO_OP_STATES:  # §6.2 step 3: SYS.1006 + cause VM.1010, before the no-op check
                raise state_error(vm.state, ISO_OP_STATES, "org.zstack.header.vm.APIDetachIsoFromVmInstanceMsg")

            def apply() -> dict[str, Any]:
                # §6.2 step 4: an ISO that is not attached (or none at all) is a successful no-op
                for cd in inv.cdroms_of(vm_uuid):
                    if target is not None and cd.isoUuid == target:
                        # VmInstanceBase.java:4585-4592,4614-4621 @ 5a29293: isoUuid and isoInstallPath are
                        # cleared, protocol is kept; the CD-ROM row stays
                        cd.isoUuid = cd.isoInstallPath = None
                        cd.lastOpDate = vm.lastOpDate = time.time()
                return {"inventory": inv.vm_inventory(vm)}

            return apply

        self.jobs.submit(job, intercept, queued)
