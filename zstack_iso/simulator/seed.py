"""Seed files: the inventory a simulator starts from (and returns to on reset).

A seed is a JSON object; `default_seed.json` next to this module is the default inventory and the example of the
format. Resources refer to each other by name ("zone": "zone-1") or by UUID ("zoneUuid": "..."). Every field a seed
leaves out gets a deterministic default, so the same seed always gives the same UUIDs and inventories.

    {"formatVersion": 1,
     "managementNode": {"version": "4.8.0"},
     "accounts": [{"uuid", "name", "password" | "passwordSha512", "type": "SystemAdmin" | "Normal"}],
     "users": [{"uuid", "account": name, "name", "password" | "passwordSha512"}],
     "accessKeys": [{"account": name, "id", "secret"}],
     "zones": [{"uuid", "name"}],
     "clusters": [{"uuid", "name", "zone", "hypervisorType": "KVM", "architecture": "x86_64"}],
     "hosts": [{"uuid", "name", "cluster", "managementIp"}],
     "primaryStorages": [{"uuid", "name", "zone", "type", "url"}],
     "backupStorages": [{"uuid", "name", "zones": [name...], "type", "status": "Connected", "url"}],
     "images": [{"uuid", "name", "mediaType": "ISO" | "RootVolumeTemplate" | "DataVolumeTemplate",
                 "state": "Enabled" | "Disabled", "status": "Ready" | "Downloading" | ..., "format", "platform",
                 "architecture", "size", "actualSize", "system", "backupStorages": [name...]}],
     "vmInstances": [{"uuid", "name", "state", "image", "host", "primaryStorage", "memorySize", "cpuNum", "ip",
                      "internalId" (default: its position, from 1),
                      "cdRoms": [{"uuid", "deviceId", "isoUuid" | "iso": name, "name", "protocol"}]}]}

Dates (`createDate`) are ISO 8601 local times ("2024-10-17T09:30:00"); passwords are given in plain text
(`password`) or as the lowercase hex SHA-512 a client sends (`passwordSha512`).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import ipaddress
import json
import uuid
from pathlib import Path
from typing import Any

DEFAULT_SEED_PATH = Path(__file__).with_name("default_seed.json")

# Namespace for UUIDs derived from a seed (NICs, volumes, CD-ROMs without an explicit uuid, ...).
_NS = uuid.UUID("6d1f5a4e-7c2b-4f0e-9a51-3c2d5b8e9f10")
_DEFAULT_DATE = "2024-10-17T09:00:00"

VM_STATES = {
    "Created", "Starting", "Running", "Stopping", "Stopped", "Rebooting", "Destroying", "Destroyed",
    "Expunging", "Migrating", "Pausing", "Paused", "Resuming", "VolumeMigrating", "Unknown", "Crashed",
}  # fmt: skip
IMAGE_STATES = {"Enabled", "Disabled"}
IMAGE_STATUSES = {"Creating", "Downloading", "Ready", "Error", "Deleted", "Migrating"}
MEDIA_TYPES = {"RootVolumeTemplate", "DataVolumeTemplate", "ISO"}
MAX_CDROMS = 3  # §7.1 vm.maximumCdRomNum


class SeedError(ValueError):
    """A seed file that cannot be used, with the reason."""


def derived_uuid(*parts: str) -> str:
    return uuid.uuid5(_NS, "/".join(parts)).hex


def sha512_hex(text: str) -> str:
    return hashlib.sha512(text.encode("utf-8")).hexdigest()


def parse_date(value: Any, where: str) -> float:
    if value is None:
        value = _DEFAULT_DATE
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError as exc:
        raise SeedError(f"{where}: createDate {value!r} is not an ISO 8601 date") from exc


def load_seed_file(path: str | Path | None = None) -> dict[str, Any]:
    """Read and normalise a seed file (the default inventory when path is None)."""
    seed_path = Path(path) if path else DEFAULT_SEED_PATH
    try:
        raw = json.loads(seed_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeedError(f"cannot read seed file {seed_path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SeedError(f"seed file {seed_path} is not valid JSON: {exc}") from exc
    return normalize_seed(raw)


def normalize_seed(raw: Any) -> dict[str, Any]:
    """Turn a seed document into the model's records (wire field names, epoch dates, internal keys with _)."""
    if not isinstance(raw, dict):
        raise SeedError("a seed must be a JSON object")
    return _Normalizer(copy.deepcopy(raw)).run()


class _Normalizer:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.out: dict[str, Any] = {
            "version": str((raw.get("managementNode") or {}).get("version", "4.8.0")),
            "accounts": {}, "users": {}, "accessKeys": {}, "zones": {}, "clusters": {}, "hosts": {},
            "primaryStorages": {}, "backupStorages": {}, "images": {}, "vmInstances": {}, "vmCdRoms": {},
        }  # fmt: skip

    def _items(self, key: str) -> list[dict[str, Any]]:
        items = self.raw.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise SeedError(f"'{key}' must be a list of objects")
        return items

    def _ref(self, kind: str, item: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
        """Resolve item[key] (a name) or item[key + 'Uuid'] to the UUID of a record of `kind`."""
        table = self.out[kind]
        if item.get(key + "Uuid"):
            ref = str(item[key + "Uuid"])
            if ref not in table:
                raise SeedError(f"{where}: {key}Uuid {ref} is not a known {kind[:-1]}")
            return ref
        if item.get(key):
            for rec in table.values():
                if rec["name"] == item[key]:
                    return rec["uuid"]
            raise SeedError(f"{where}: {key} {item[key]!r} is not a known {kind[:-1]}")
        if not required:
            return None
        if len(table) == 1:
            return next(iter(table))
        raise SeedError(f"{where}: '{key}' is required")

    def _base(self, kind: str, item: dict[str, Any], i: int) -> tuple[dict[str, Any], str]:
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise SeedError(f"{kind}[{i}]: 'name' is required")
        where = f"{kind}[{name}]"
        uid = str(item.get("uuid") or derived_uuid(kind, name))
        if len(uid) != 32 or any(c not in "0123456789abcdef" for c in uid):
            raise SeedError(f"{where}: uuid {uid!r} must be 32 lowercase hex characters")
        if uid in self.out[kind]:
            raise SeedError(f"{where}: duplicate uuid {uid}")
        created = parse_date(item.get("createDate"), where)
        return {"uuid": uid, "name": name, "createDate": created, "lastOpDate": created}, where

    def _password(self, item: dict[str, Any], where: str) -> str:
        if item.get("passwordSha512"):
            return str(item["passwordSha512"]).lower()
        if isinstance(item.get("password"), str):
            return sha512_hex(item["password"])
        raise SeedError(f"{where}: 'password' or 'passwordSha512' is required")

    def run(self) -> dict[str, Any]:
        self._identity()
        self._infrastructure()
        for i, item in enumerate(self._items("images")):
            self._image(item, i)
        for i, item in enumerate(self._items("vmInstances")):
            self._vm(item, i)
        return self.out

    def _identity(self) -> None:
        out = self.out
        for i, item in enumerate(self._items("accounts")):
            rec, where = self._base("accounts", item, i)
            rec["type"] = item.get("type", "Normal")
            rec["_passwordSha512"] = self._password(item, where)
            out["accounts"][rec["uuid"]] = rec
        for i, item in enumerate(self._items("users")):
            rec, where = self._base("users", item, i)
            rec["accountUuid"] = self._ref("accounts", item, "account", where)
            rec["_passwordSha512"] = self._password(item, where)
            out["users"][rec["uuid"]] = rec
        for i, item in enumerate(self._items("accessKeys")):
            key_id, secret = item.get("id"), item.get("secret")
            if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
                raise SeedError(f"accessKeys[{i}]: 'id' and 'secret' are required strings")
            account = self._ref("accounts", item, "account", f"accessKeys[{key_id}]")
            user = self._ref("users", item, "user", f"accessKeys[{key_id}]", required=False)
            out["accessKeys"][key_id] = {"id": key_id, "secret": secret, "accountUuid": account, "userUuid": user}

    def _infrastructure(self) -> None:
        out = self.out
        for i, item in enumerate(self._items("zones")):
            rec, _ = self._base("zones", item, i)
            rec.update(description=item.get("description"), state="Enabled", type="zstack")
            out["zones"][rec["uuid"]] = rec
        for i, item in enumerate(self._items("clusters")):
            rec, where = self._base("clusters", item, i)
            rec.update(
                zoneUuid=self._ref("zones", item, "zone", where),
                hypervisorType=item.get("hypervisorType", "KVM"),
                architecture=item.get("architecture", "x86_64"),
                state="Enabled",
                type="zstack",
            )
            out["clusters"][rec["uuid"]] = rec
        for i, item in enumerate(self._items("hosts")):
            rec, where = self._base("hosts", item, i)
            cluster = self._ref("clusters", item, "cluster", where)
            rec.update(
                zoneUuid=out["clusters"][cluster]["zoneUuid"],
                clusterUuid=cluster,
                managementIp=item.get("managementIp", "192.168.0.10"),
                hypervisorType=out["clusters"][cluster]["hypervisorType"],
                state="Enabled",
                status="Connected",
                architecture=out["clusters"][cluster]["architecture"],
            )
            out["hosts"][rec["uuid"]] = rec
        for i, item in enumerate(self._items("primaryStorages")):
            rec, where = self._base("primaryStorages", item, i)
            rec.update(
                zoneUuid=self._ref("zones", item, "zone", where),
                url=item.get("url", "/zstack_ps"),
                type=item.get("type", "LocalStorage"),
                state="Enabled",
                status="Connected",
            )
            out["primaryStorages"][rec["uuid"]] = rec
        for i, item in enumerate(self._items("backupStorages")):
            rec, where = self._base("backupStorages", item, i)
            zones = item.get("zones", list(out["zones"][z]["name"] for z in out["zones"]))
            rec.update(
                url=item.get("url", "/zstack_bs"),
                type=item.get("type", "ImageStoreBackupStorage"),
                state="Enabled",
                status=item.get("status", "Connected"),
                attachedZoneUuids=[self._ref("zones", {"zone": z}, "zone", where) for z in zones],
            )
            out["backupStorages"][rec["uuid"]] = rec

    def _image(self, item: dict[str, Any], i: int) -> None:
        rec, where = self._base("images", item, i)
        media = item.get("mediaType", "ISO" if item.get("format") == "iso" else "RootVolumeTemplate")
        if media not in MEDIA_TYPES:
            raise SeedError(f"{where}: mediaType must be one of {sorted(MEDIA_TYPES)}")
        state, status = item.get("state", "Enabled"), item.get("status", "Ready")
        if state not in IMAGE_STATES or status not in IMAGE_STATUSES:
            raise SeedError(f"{where}: state must be in {sorted(IMAGE_STATES)}, status in {sorted(IMAGE_STATUSES)}")
        fmt = "iso" if media == "ISO" else item.get("format", "qcow2")  # §8 ISO invariant
        size = int(item.get("size", 0))
        refs = []
        for bs_name in item.get("backupStorages", []):
            bs = self._ref("backupStorages", {"bs": bs_name}, "bs", where)
            refs.append({
                "id": 0, "imageUuid": rec["uuid"], "backupStorageUuid": bs,
                "installPath": f"{self.out['backupStorages'][bs]['url']}/images/{rec['uuid']}.{fmt}",
                "status": "Ready" if status == "Ready" else "Downloading",
                "createDate": rec["createDate"], "lastOpDate": rec["createDate"],
            })  # fmt: skip
        rec.update(
            description=item.get("description"),
            state=state,
            status=status,
            size=size,
            actualSize=int(item.get("actualSize", size)),
            md5Sum=item.get("md5Sum", derived_uuid("md5", rec["uuid"])),
            url=item.get("url", f"http://images.example.com/{rec['name']}"),
            mediaType=media,
            guestOsType=item.get("guestOsType"),
            type="zstack",
            platform=item.get("platform", "Linux"),
            architecture=item.get("architecture", "x86_64"),
            format=fmt,
            system=bool(item.get("system", False)),
            virtio=bool(item.get("virtio", True)),
            backupStorageRefs=refs,
        )
        self.out["images"][rec["uuid"]] = rec

    def _vm(self, item: dict[str, Any], i: int) -> None:
        out = self.out
        rec, where = self._base("vmInstances", item, i)
        state = item.get("state", "Running")
        if state not in VM_STATES:
            raise SeedError(f"{where}: state {state!r} is not a VM state")
        host = self._ref("hosts", item, "host", where)
        ps = self._ref("primaryStorages", item, "primaryStorage", where)
        image = self._ref("images", item, "image", where, required=False)
        h = out["hosts"][host]
        uid = rec["uuid"]
        root = derived_uuid("volume", uid)
        l3 = derived_uuid("l3", h["zoneUuid"])
        ip = item.get("ip", f"10.0.0.{10 + i}")
        created = rec["createDate"]
        running = state in {"Running", "Paused", "Unknown", "Rebooting", "Stopping", "Migrating"}
        internal_id = item.get("internalId", i + 1)  # VmInstanceVO.internalId: a long, unique per VM
        if isinstance(internal_id, bool) or not isinstance(internal_id, int):
            raise SeedError(f"{where}: internalId must be an integer")
        rec.update(
            description=item.get("description"),
            zoneUuid=h["zoneUuid"],
            clusterUuid=h["clusterUuid"],
            imageUuid=image,
            hostUuid=host if running else None,
            lastHostUuid=host,
            instanceOfferingUuid=derived_uuid("instance-offering", "default"),
            rootVolumeUuid=root,
            platform=item.get("platform", "Linux"),
            architecture=h["architecture"],
            guestOsType=item.get("guestOsType"),
            defaultL3NetworkUuid=l3,
            type="UserVm",
            hypervisorType=h["hypervisorType"],
            memorySize=int(item.get("memorySize", 2147483648)),
            cpuNum=int(item.get("cpuNum", 2)),
            cpuSpeed=0,
            allocatorStrategy="LastHostPreferredAllocatorStrategy",
            state=state,
            internalId=internal_id,
            vmNics=[self._nic(uid, ip, l3, h["hypervisorType"], internal_id, created)],
            allVolumes=[_root_volume(root, rec["name"], ps, uid, image, created)],
        )
        self._cdroms(item, uid, where, running, created)
        out["vmInstances"][uid] = rec

    @staticmethod
    def _nic(uid: str, ip: str, l3: str, hypervisor: str, internal_id: int, created: float) -> dict[str, Any]:
        nic = derived_uuid("nic", uid)
        gateway = ip.rsplit(".", 1)[0] + ".1"
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None  # a seed may say anything; the derived fields are then left out
        used_ip = {
            "uuid": derived_uuid("used-ip", nic), "ipRangeUuid": derived_uuid("ip-range", l3), "l3NetworkUuid": l3,
            "ipVersion": address.version if address else None, "ip": ip, "netmask": "255.255.255.0",
            "gateway": gateway, "ipInLong": int(address) if address else None,
            "ipInBinary": [b - 256 if b > 127 else b for b in address.packed] if address else None,  # Java bytes
            "vmNicUuid": nic, "createDate": created, "lastOpDate": created,
        }  # fmt: skip
        return {
            "uuid": nic, "vmInstanceUuid": uid, "usedIpUuid": used_ip["uuid"], "l3NetworkUuid": l3, "ip": ip,
            "mac": "fa:" + ":".join(derived_uuid("mac", uid)[k:k + 2] for k in range(0, 10, 2)),
            "hypervisorType": hypervisor, "netmask": "255.255.255.0", "gateway": gateway,
            "driverType": "virtio", "usedIps": [used_ip], "internalName": f"vnic{internal_id}.0",
            "deviceId": 0, "type": "VNIC", "state": "enable", "createDate": created, "lastOpDate": created,
        }  # fmt: skip

    def _cdroms(self, item: dict[str, Any], uid: str, where: str, running: bool, created: float) -> None:
        out = self.out
        cdroms = item.get("cdRoms", [])
        if not isinstance(cdroms, list) or len(cdroms) > MAX_CDROMS:
            raise SeedError(f"{where}: 'cdRoms' must be a list of at most {MAX_CDROMS} CD-ROMs")
        seen_ids: set[int] = set()
        seen_isos: set[str] = set()
        for k, cd in enumerate(cdroms):
            device_id = int(cd.get("deviceId", k))
            if device_id in seen_ids or not 0 <= device_id < MAX_CDROMS:
                raise SeedError(f"{where}: CD-ROM deviceIds must be distinct and in 0..{MAX_CDROMS - 1}")
            seen_ids.add(device_id)
            iso = self._ref("images", cd, "iso", f"{where}.cdRoms[{k}]", required=False)
            if iso:
                if iso in seen_isos:
                    raise SeedError(f"{where}: ISO {iso} is in two CD-ROMs")
                seen_isos.add(iso)
            cd_uuid = str(cd.get("uuid") or derived_uuid("cdrom", uid, str(device_id)))
            if cd_uuid in out["vmCdRoms"]:
                raise SeedError(f"{where}: duplicate CD-ROM uuid {cd_uuid}")
            out["vmCdRoms"][cd_uuid] = {
                "uuid": cd_uuid, "vmInstanceUuid": uid, "deviceId": device_id, "isoUuid": iso,
                "isoInstallPath": f"/zstack_ps/imagecache/iso/{iso}/{iso}.iso" if iso and running else None,
                "name": cd.get("name", f"vm-{uid}-cdRom"), "description": cd.get("description"),
                "protocol": cd.get("protocol"),
                "createDate": created, "lastOpDate": created,
            }  # fmt: skip


def _root_volume(root: str, vm_name: str, ps: str, uid: str, image: str | None, created: float) -> dict[str, Any]:
    return {
        "uuid": root, "name": f"ROOT-for-{vm_name}", "primaryStorageUuid": ps, "vmInstanceUuid": uid,
        "rootImageUuid": image, "installPath": f"/zstack_ps/rootVolumes/acct-admin/vol-{root}/{root}.qcow2",
        "type": "Root", "format": "qcow2", "size": 21474836480, "actualSize": 1395261440, "deviceId": 0,
        "state": "Enabled", "status": "Ready", "isShareable": False,
        "createDate": created, "lastOpDate": created,
    }  # fmt: skip
