"""The node's database: every resource table, loaded from a seed (or a state file), and the lookups the rules
share. No locking here: the node's lock is held by whoever calls."""

from __future__ import annotations

import copy
from dataclasses import asdict
from typing import Any

from .errors import not_found
from .records import (
    CDROM_FIELDS,
    IMAGE_FIELDS,
    VM_FIELDS,
    Image,
    ImageBackupStorageRef,
    VmCdRom,
    VmInstance,
    from_dict,
    render,
)


def _image(row: dict[str, Any]) -> Image:
    image = from_dict(Image, row)
    image.backupStorageRefs = [from_dict(ImageBackupStorageRef, ref) for ref in row.get("backupStorageRefs", [])]
    return image


class Inventory:
    """Accounts, users, AccessKeys and the infrastructure as plain rows; VMs, CD-ROMs and images as records."""

    def __init__(self, seed: dict[str, Any]) -> None:
        self.load(seed)

    def load(self, seed: dict[str, Any]) -> None:
        """Replace every table with a copy of a seed's (or a state file's) inventory."""
        inv = copy.deepcopy(seed)
        self.version: str = inv["version"]
        self.accounts: dict[str, dict[str, Any]] = inv["accounts"]
        self.users: dict[str, dict[str, Any]] = inv["users"]
        self.access_keys: dict[str, dict[str, Any]] = inv["accessKeys"]
        self.zones: dict[str, dict[str, Any]] = inv["zones"]
        self.clusters: dict[str, dict[str, Any]] = inv["clusters"]
        self.hosts: dict[str, dict[str, Any]] = inv["hosts"]
        self.primary_storages: dict[str, dict[str, Any]] = inv["primaryStorages"]
        self.backup_storages: dict[str, dict[str, Any]] = inv["backupStorages"]
        self.images: dict[str, Image] = {uid: _image(row) for uid, row in inv["images"].items()}
        self.vms: dict[str, VmInstance] = {uid: from_dict(VmInstance, row) for uid, row in inv["vmInstances"].items()}
        self.cdroms: dict[str, VmCdRom] = {uid: from_dict(VmCdRom, row) for uid, row in inv["vmCdRoms"].items()}
        next_id = max((vm.internalId or 0 for vm in self.vms.values()), default=0) + 1
        for vm in self.vms.values():  # a state file written before VMs had an internalId
            if vm.internalId is None:
                vm.internalId, next_id = next_id, next_id + 1

    def to_state(self) -> dict[str, Any]:
        """The inventory as a state file keeps it: VMs in a transitional or held state are saved settled."""
        vms = {}
        for uid, vm in self.vms.items():
            saved = asdict(vm)
            settled = saved.pop("settled_state")
            if settled is not None:
                saved["state"] = settled
            vms[uid] = saved
        return {
            "version": self.version, "accounts": self.accounts, "users": self.users,
            "accessKeys": self.access_keys, "zones": self.zones, "clusters": self.clusters,
            "hosts": self.hosts, "primaryStorages": self.primary_storages,
            "backupStorages": self.backup_storages,
            "images": {uid: asdict(image) for uid, image in self.images.items()}, "vmInstances": vms,
            "vmCdRoms": {uid: asdict(cd) for uid, cd in self.cdroms.items()},
        }  # fmt: skip

    # ------------------------------------------------------------------ lookups

    def find_vm(self, vm_uuid: str, field_name: str) -> VmInstance:
        vm = self.vms.get(vm_uuid)
        if vm is None:
            raise not_found(field_name, vm_uuid, "VmInstanceVO")  # SYS.1003
        return vm

    def find_image(self, image_uuid: str, field_name: str) -> Image:
        image = self.images.get(image_uuid)
        if image is None:
            raise not_found(field_name, image_uuid, "ImageVO")  # SYS.1003
        return image

    def cdroms_of(self, vm_uuid: str) -> list[VmCdRom]:
        """A VM's CD-ROMs by deviceId, as the node's queries order them."""
        return sorted((c for c in self.cdroms.values() if c.vmInstanceUuid == vm_uuid), key=lambda c: c.deviceId)

    def isos_of(self, vm_uuid: str) -> list[str]:
        """The ISOs in a VM's CD-ROMs, by deviceId."""
        return [c.isoUuid for c in self.cdroms_of(vm_uuid) if c.isoUuid]

    def vm_view(self, vm: VmInstance) -> dict[str, Any]:
        """A VM as queries see it: its wire fields and its CD-ROMs."""
        view = dict(vars(vm))  # shallow: a view is read, never changed
        del view["settled_state"]
        view["vmCdRoms"] = self.cdroms_of(vm.uuid)
        return view

    def vm_inventory(self, vm: VmInstance) -> dict[str, Any]:
        return render(self.vm_view(vm), VM_FIELDS)

    def zone_backup_storages(self, vm: VmInstance, iso: Image) -> list[tuple[ImageBackupStorageRef, dict[str, Any]]]:
        """(ref, backup storage) pairs of the ISO on backup storages attached to the VM's zone."""
        pairs = []
        for ref in iso.backupStorageRefs:
            bs = self.backup_storages.get(ref.backupStorageUuid)
            if bs is not None and vm.zoneUuid in bs.get("attachedZoneUuids", []):
                pairs.append((ref, bs))
        return pairs

    def primary_storage_of(self, vm: VmInstance) -> str:
        return next((v["primaryStorageUuid"] for v in vm.allVolumes if v.get("type") == "Root"), "")

    def dump(self) -> dict[str, Any]:
        """Everything a test helper needs to look things up by name, rendered as on the wire."""
        return {
            "vmInstances": [self.vm_inventory(vm) for vm in self.vms.values()],
            "vmCdRoms": [render(c, CDROM_FIELDS) for c in self.cdroms.values()],
            "images": [render(i, IMAGE_FIELDS) for i in self.images.values()],
            "accounts": [{"uuid": a["uuid"], "name": a["name"]} for a in self.accounts.values()],
            "accessKeys": [
                {"id": k["id"], "secret": k["secret"], "accountUuid": k["accountUuid"]}
                for k in self.access_keys.values()
            ],
            "version": self.version,
        }
