"""The CD-ROM APIs (§7.2): CreateVmCdRom, DeleteVmCdRom, UpdateVmCdRom, SetVmInstanceDefaultCdRom."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from .errors import argerr, not_found, operr, require, state_error, success_if_not_existing
from .isos import ISO_OP_STATES, check_iso_usable
from .java import java_trim
from .jobs import Apply, Job
from .records import CDROM_FIELDS, Image, VmCdRom, render
from .rules import Rules
from .seed import MAX_CDROMS
from .sessions import Auth

UUID_RE = re.compile(r"^[0-9a-fA-F]{32}$")


class CdRomRules(Rules):
    def _check_attachable_iso(self, vm_uuid: str, iso: Image) -> None:
        """§7.2: an ISO given at creation passes attach's step 3 (§5.2): SYS.1006, SYS.1007."""
        if iso.uuid in self.inventory.isos_of(vm_uuid):
            raise operr(f"VM[uuid:{vm_uuid}] already has an ISO[uuid:{iso.uuid}] attached")
        if iso.mediaType != "ISO":
            raise argerr(f"Unsupported Image Media Type: [{iso.mediaType}] ")
        if self.config.strictAttach:  # doCreateVmCdRom checks neither state nor status (VmInstanceBase.java:8349)
            check_iso_usable(iso)

    def create(
        self,
        job: Job,
        auth: Auth,
        vm_uuid: str | None,
        name: str | None,
        iso_uuid: str | None = None,
        description: str | None = None,
        resource_uuid: str | None = None,
    ) -> None:
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            require(vm_uuid, "vmInstanceUuid")
            require(name, "name")
            vm = inv.find_vm(vm_uuid, "vmInstanceUuid")  # SYS.1003
            iso = inv.find_image(iso_uuid, "isoUuid") if iso_uuid else None
            if resource_uuid is not None and (not UUID_RE.match(resource_uuid) or resource_uuid in inv.cdroms):
                raise argerr(f"invalid resourceUuid[{resource_uuid}]: not a UUID or already used")
            self.identity.check(auth)
            if vm.state != "Stopped":  # §7.2: SYS.1007 (trailing space is ZStack's)
                raise argerr(f"Can not create CD-ROM for vm[uuid:{vm_uuid}] which is in state[{vm.state}] ")
            if len(inv.cdroms_of(vm_uuid)) >= MAX_CDROMS:  # §7.1 vm.maximumCdRomNum: SYS.1006
                raise operr(f"VM[uuid:{vm_uuid}] can only add {MAX_CDROMS} CDROMs")
            if iso is not None:  # §7.2: SYS.1006 for an ISO already on the VM
                self._check_attachable_iso(vm_uuid, iso)
            return vm_uuid, None

        def queued(_: None) -> Apply:
            vm = inv.find_vm(vm_uuid, "vmInstanceUuid")
            if vm.state != "Stopped":  # §7.2: the internal message is allowed only in Stopped
                raise state_error(vm.state, ("Stopped",), "org.zstack.header.vm.cdrom.CreateVmCdRomMsg")
            if len(inv.cdroms_of(vm_uuid)) >= MAX_CDROMS:
                raise operr(f"VM[uuid:{vm_uuid}] can only add {MAX_CDROMS} CDROMs")
            if iso_uuid:
                self._check_attachable_iso(vm_uuid, inv.find_image(iso_uuid, "isoUuid"))
            if resource_uuid is not None and resource_uuid in inv.cdroms:
                raise argerr(f"invalid resourceUuid[{resource_uuid}]: not a UUID or already used")

            def apply() -> dict[str, Any]:
                used = {c.deviceId for c in inv.cdroms_of(vm_uuid)}
                now = time.time()
                cd = VmCdRom(
                    uuid=resource_uuid or uuid.uuid4().hex,
                    vmInstanceUuid=vm_uuid,
                    deviceId=min(set(range(MAX_CDROMS + 1)) - used),  # §7.2: lowest free deviceId
                    isoUuid=iso_uuid or None,
                    isoInstallPath=None,  # the VM is Stopped: database only
                    name=name,
                    description=description,
                    createDate=now,
                    lastOpDate=now,
                )
                inv.cdroms[cd.uuid] = cd
                return {"inventory": render(cd, CDROM_FIELDS)}

            return apply

        self.jobs.submit(job, intercept, queued)

    def delete(self, job: Job, auth: Auth, cdrom_uuid: str) -> None:
        """§7.2 DeleteVmCdRom; a CD-ROM holding an ISO may be deleted too, the others keep their deviceIds
        (VmInstanceBase.java:8296-8347 @ 5a29293: no ISO check, no renumbering)."""
        cdrom_uuid = java_trim(cdrom_uuid)  # APIMessage.java:204-226: String fields are trimmed before validation
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            cd = inv.cdroms.get(cdrom_uuid)
            if cd is None:  # successIfResourceNotExisting: SYS.1003 or success, before the session check
                success_if_not_existing(cdrom_uuid)
            self.identity.check(auth)  # ID.1001
            return cd.vmInstanceUuid, None

        def queued(_: None) -> Apply:
            cd = inv.cdroms.get(cdrom_uuid)
            if cd is not None:
                vm = inv.vms.get(cd.vmInstanceUuid)
                # VmInstanceBase.java:8296-8336 / AbstractVmInstance.java:109: the state check is on the internal
                # message the API handler sends: SYS.1006 + cause VM.1010 naming DeleteVmCdRomMsg
                if vm is not None and vm.state != "Stopped":
                    raise state_error(vm.state, ("Stopped",), "org.zstack.header.vm.cdrom.DeleteVmCdRomMsg")

            def apply() -> dict[str, Any]:
                inv.cdroms.pop(cdrom_uuid, None)
                return {}  # §7.2: APIDeleteVmCdRomEvent has no mapping

            return apply

        self.jobs.submit(job, intercept, queued)

    def update(self, job: Job, auth: Auth, cdrom_uuid: str, name: str | None, description: str | None) -> None:
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            cd = inv.cdroms.get(cdrom_uuid)
            if cd is None:
                raise not_found("uuid", cdrom_uuid, "VmCdRomVO")  # SYS.1003
            self.identity.check(auth)
            return cd.vmInstanceUuid, None

        def queued(_: None) -> Apply:
            if cdrom_uuid not in inv.cdroms:
                raise not_found("uuid", cdrom_uuid, "VmCdRomVO")

            def apply() -> dict[str, Any]:
                cd = inv.cdroms[cdrom_uuid]
                if name is not None:
                    cd.name = name
                if description is not None:
                    cd.description = description
                cd.lastOpDate = time.time()
                return {"inventory": render(cd, CDROM_FIELDS)}

            return apply

        self.jobs.submit(job, intercept, queued)

    def set_default(self, job: Job, auth: Auth, vm_uuid: str, cdrom_uuid: str) -> None:
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            inv.find_vm(vm_uuid, "vmInstanceUuid")
            cd = inv.cdroms.get(cdrom_uuid)
            if cd is None:
                raise not_found("uuid", cdrom_uuid, "VmCdRomVO")
            self.identity.check(auth)
            if cd.vmInstanceUuid != vm_uuid:  # not settled by the spec: refuse a CD-ROM of another VM
                raise argerr(f"The CdRom[{cdrom_uuid}] does not belong to the vm[uuid:{vm_uuid}]")
            if cd.deviceId == 0:  # §7.2: SYS.1007
                raise argerr(f"The CdRom[{cdrom_uuid}] Already the default")
            return vm_uuid, None

        def queued(_: None) -> Apply:
            vm = inv.find_vm(vm_uuid, "vmInstanceUuid")
            if cdrom_uuid not in inv.cdroms:
                raise not_found("uuid", cdrom_uuid, "VmCdRomVO")
            if vm.state not in ISO_OP_STATES:
                raise state_error(vm.state, ISO_OP_STATES, "org.zstack.header.vm.cdrom.APISetVmInstanceDefaultCdRomMsg")

            def apply() -> dict[str, Any]:
                # §7.2: the target takes deviceId 0, the old default takes the target's old deviceId
                target = inv.cdroms[cdrom_uuid]
                old_id = target.deviceId
                now = time.time()
                for cd in inv.cdroms_of(vm_uuid):
                    if cd.deviceId == 0:
                        cd.deviceId, cd.lastOpDate = old_id, now
                target.deviceId, target.lastOpDate = 0, now
                return {"inventory": render(target, CDROM_FIELDS)}

            return apply

        self.jobs.submit(job, intercept, queued)
