"""One record class per ZStack resource the rules change, and how a record becomes a wire inventory.

A record's fields are the Java inventory's, in declared order (Gson writes declared fields in order, §9); the file
and lines are those of [Z] header/src/main/java/org/zstack/header/... @ 5a29293. Nested rows a rule never
changes (NICs, volumes, used IPs, backup storages) stay plain dicts. Dates are epoch seconds until rendered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def zstack_date(epoch: float) -> str:
    """§9: Gson's default US format `MMM d, yyyy h:mm:ss a`, in the node's local time zone."""
    t = time.localtime(epoch)
    hour = t.tm_hour % 12 or 12
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year} {hour}:{t.tm_min:02d}:{t.tm_sec:02d} " + (
        "AM" if t.tm_hour < 12 else "PM"
    )


def parse_zstack_date(text: str) -> float:
    return time.mktime(time.strptime(text, "%b %d, %Y %I:%M:%S %p"))


@dataclass
class VmCdRom:  # vm/cdrom/VmCdRomInventory.java:18-37
    uuid: str
    vmInstanceUuid: str
    deviceId: int
    isoUuid: str | None = None
    isoInstallPath: str | None = None
    name: str | None = None
    description: str | None = None
    protocol: str | None = None
    createDate: float | None = None
    lastOpDate: float | None = None


@dataclass
class ImageBackupStorageRef:  # image/ImageBackupStorageRefInventory.java:24-34
    id: int
    imageUuid: str
    backupStorageUuid: str
    installPath: str | None = None
    status: str | None = None
    exportMd5Sum: str | None = None
    exportUrl: str | None = None
    createDate: float | None = None
    lastOpDate: float | None = None


@dataclass
class Image:  # image/ImageInventory.java:27-50 (systemTags is never set by valueOf)
    uuid: str
    name: str
    description: str | None = None
    state: str | None = None
    status: str | None = None
    size: int | None = None
    actualSize: int | None = None
    md5Sum: str | None = None
    url: str | None = None
    mediaType: str | None = None
    guestOsType: str | None = None
    type: str | None = None
    platform: str | None = None
    architecture: str | None = None
    format: str | None = None
    system: bool | None = None
    virtio: bool | None = None
    createDate: float | None = None
    lastOpDate: float | None = None
    backupStorageRefs: list[ImageBackupStorageRef] = field(default_factory=list)


@dataclass
class VmInstance:  # vm/VmInstanceInventory.java:153-273 (vmCdRoms, between allVolumes and guestOsType, is derived)
    uuid: str
    name: str
    description: str | None = None
    zoneUuid: str | None = None
    clusterUuid: str | None = None
    imageUuid: str | None = None
    hostUuid: str | None = None
    lastHostUuid: str | None = None
    instanceOfferingUuid: str | None = None
    rootVolumeUuid: str | None = None
    platform: str | None = None
    architecture: str | None = None
    defaultL3NetworkUuid: str | None = None
    type: str | None = None
    hypervisorType: str | None = None
    memorySize: int | None = None
    reservedMemorySize: int | None = None
    cpuNum: int | None = None
    cpuSpeed: int | None = None
    allocatorStrategy: str | None = None
    createDate: float | None = None
    lastOpDate: float | None = None
    state: str | None = None
    internalId: int | None = None
    vmNics: list[dict[str, Any]] = field(default_factory=list)
    allVolumes: list[dict[str, Any]] = field(default_factory=list)
    guestOsType: str | None = None
    # not on the wire: the state a transitional or held state returns to (what the state file saves)
    settled_state: str | None = None


@dataclass
class Session:  # identity/SessionInventory.java (userType is never set)
    uuid: str
    accountUuid: str
    userUuid: str
    expiredDate: float
    createDate: float
    userType: str | None = None


def wire_fields(record_class: type) -> tuple[str, ...]:
    """The fields a record shows on the wire, in order: a snake_case field is the simulator's own."""
    return tuple(f.name for f in fields(record_class) if "_" not in f.name)


def from_dict(record_class: type, data: dict[str, Any]) -> Any:
    """A record from a seed or state-file row; keys that are no field of the record are ignored."""
    names = {f.name for f in fields(record_class)}
    return record_class(**{k: v for k, v in data.items() if k in names})


CDROM_FIELDS = wire_fields(VmCdRom)
BS_REF_FIELDS = wire_fields(ImageBackupStorageRef)
IMAGE_FIELDS = wire_fields(Image)
_VM_RECORD_FIELDS = wire_fields(VmInstance)
VM_FIELDS = (*_VM_RECORD_FIELDS[:-1], "vmCdRoms", _VM_RECORD_FIELDS[-1])  # internalId after state, guestOsType last
SESSION_FIELDS = ("uuid", "accountUuid", "userUuid", "userType", "expiredDate", "createDate")
NIC_FIELDS = (  # vm/VmNicInventory.java:28-49 (ipVersion is deprecated and never set by the constructor)
    "uuid", "vmInstanceUuid", "usedIpUuid", "l3NetworkUuid", "ip", "mac", "hypervisorType", "netmask", "gateway",
    "metaData", "ipVersion", "driverType", "usedIps", "internalName", "deviceId", "type", "state", "createDate",
    "lastOpDate",
)  # fmt: skip
USED_IP_FIELDS = (  # network/l3/UsedIpInventory.java:26-41 (ipInBinary is a byte[]: Gson writes signed bytes)
    "uuid", "ipRangeUuid", "l3NetworkUuid", "ipVersion", "ip", "netmask", "gateway", "usedFor", "metaData",
    "ipInLong", "ipInBinary", "vmNicUuid", "createDate", "lastOpDate",
)  # fmt: skip
VOLUME_FIELDS = (  # volume/VolumeInventory.java:65-157
    "uuid", "name", "description", "primaryStorageUuid", "vmInstanceUuid", "diskOfferingUuid", "rootImageUuid",
    "installPath", "type", "format", "size", "actualSize", "deviceId", "state", "status", "createDate", "lastOpDate",
    "isShareable", "volumeQos", "lastDetachDate", "lastVmInstanceUuid", "lastAttachDate", "protocol",
)  # fmt: skip
BS_FIELDS = ("uuid", "name", "description", "url", "type", "state", "status", "attachedZoneUuids",
             "createDate", "lastOpDate")  # fmt: skip
_NESTED_FIELDS = {
    "vmCdRoms": CDROM_FIELDS, "vmNics": NIC_FIELDS, "allVolumes": VOLUME_FIELDS, "backupStorageRefs": BS_REF_FIELDS,
    "usedIps": USED_IP_FIELDS,
}  # fmt: skip
DATE_FIELDS = frozenset({"createDate", "lastOpDate", "expiredDate", "lastDetachDate", "lastAttachDate"})

# JsonSchemaBuilder (§14): the Java class of each inventory kind, and its fields that hold inventories, in
# declared order (JsonSchemaBuilder.java:33-155 @ 5a29293 walks FieldUtils.getAllFields in that order).
INVENTORY_CLASSES: dict[str, tuple[str, dict[str, str]]] = {
    "vmInstance": ("org.zstack.header.vm.VmInstanceInventory",
                   {"vmNics": "vmNic", "allVolumes": "volume", "vmCdRoms": "vmCdRom"}),
    "vmNic": ("org.zstack.header.vm.VmNicInventory", {"usedIps": "usedIp"}),
    "usedIp": ("org.zstack.header.network.l3.UsedIpInventory", {}),
    "volume": ("org.zstack.header.volume.VolumeInventory", {}),
    "vmCdRom": ("org.zstack.header.vm.cdrom.VmCdRomInventory", {}),
    "image": ("org.zstack.header.image.ImageInventory", {"backupStorageRefs": "imageBackupStorageRef"}),
    "imageBackupStorageRef": ("org.zstack.header.image.ImageBackupStorageRefInventory", {}),
    "session": ("org.zstack.header.identity.SessionInventory", {}),
}  # fmt: skip


def value_of(row: Any, name: str) -> Any:
    """A field of a record or of a plain row (None when it has no such field, as a Java null)."""
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)


def render(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A wire inventory: declared order, nulls omitted (§9), dates formatted, nested lists rendered."""
    out: dict[str, Any] = {}
    for name in fields:
        value = value_of(row, name)
        if value is None:
            continue
        if name in DATE_FIELDS:
            value = zstack_date(value)
        elif isinstance(value, list) and name in _NESTED_FIELDS:
            value = [render(item, _NESTED_FIELDS[name]) for item in value]
        out[name] = value
    return out
