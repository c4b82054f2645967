"""Typed ZStack inventories (pydantic v2), read leniently the way a real node writes them.

- Attributes are snake_case; the wire names are ZStack's camelCase (aliases). Both are accepted on input.
- Unknown fields are kept (``model_extra``) rather than rejected: newer nodes add fields.
- Integers may arrive as doubles (``8.589934592E9``, ``0.0``): published examples do that (§9).
- Dates are ZStack's ``MMM d, yyyy h:mm:ss a`` in the node's local zone (§9), parsed to naive datetimes;
  ISO 8601 and epoch milliseconds are accepted too; an unreadable date becomes None instead of failing.
- Enum-like fields (VM state, image state/status/media type) hold the enum member when the value is
  known and the plain string otherwise, so a new state on a newer node is not fatal.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "ErrorCode",
    "Image",
    "ImageBackupStorageRef",
    "ImageMediaType",
    "ImageState",
    "ImageStatus",
    "Session",
    "VmCdRom",
    "VmInstance",
    "VmState",
    "GONE_VM_STATES",
    "ISO_OPERABLE_VM_STATES",
    "TRANSITIONAL_VM_STATES",
    "parse_zstack_date",
]


class ZStackEnum(str, Enum):
    """A known ZStack string value; equal to, hashed like and printed as the plain string, so
    ``vm.state in {"Running", "Stopped"}`` and f-strings behave the same whether the value is known or not."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


class VmState(ZStackEnum):
    """VmInstanceState values (§13, §5.2 step 4)."""

    CREATED = "Created"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    REBOOTING = "Rebooting"
    DESTROYING = "Destroying"
    DESTROYED = "Destroyed"
    MIGRATING = "Migrating"
    EXPUNGING = "Expunging"
    PAUSING = "Pausing"
    PAUSED = "Paused"
    RESUMING = "Resuming"
    VOLUME_MIGRATING = "VolumeMigrating"
    VOLUME_RECOVERING = "VolumeRecovering"
    ERROR = "Error"
    UNKNOWN = "Unknown"
    CRASHED = "Crashed"
    NO_STATE = "NoState"


# The one definition of which VM states allow what; the client and the provider both use these.
# States that end by themselves, so waiting is the answer; ISO attach and detach are refused in them
# (§13 "Transitional states", §5.2 step 4, §6.2 step 3). Created ends in Starting (§5.2 step 4 lists it as
# refused); Expunging is not here: it ends in no VM at all, see GONE_VM_STATES.
TRANSITIONAL_VM_STATES: frozenset[str] = frozenset(
    {
        "Created",
        "Starting",
        "Stopping",
        "Rebooting",
        "Destroying",
        "Migrating",
        "Pausing",
        "Resuming",
        "VolumeMigrating",
        "VolumeRecovering",
    }
)
# States in which ISO attach and detach are allowed (§5.2 step 4, §6.2 step 3).
ISO_OPERABLE_VM_STATES: frozenset[str] = frozenset({"Running", "Stopped", "Paused"})
# States of a VM that is deleted or being deleted: waiting brings back no VM that takes an ISO (§13: Destroyed
# is soft-deleted until RecoverVmInstance; Expunging ends with the VM gone from queries).
GONE_VM_STATES: frozenset[str] = frozenset({"Destroyed", "Expunging"})
# Any other state (Unknown, Crashed, Error, NoState, or one this client does not know) needs a person.


class ImageState(ZStackEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class ImageStatus(ZStackEnum):
    CREATING = "Creating"
    DOWNLOADING = "Downloading"
    READY = "Ready"
    ERROR = "Error"
    DELETED = "Deleted"
    MIGRATING = "Migrating"


class ImageMediaType(ZStackEnum):
    ROOT_VOLUME_TEMPLATE = "RootVolumeTemplate"
    DATA_VOLUME_TEMPLATE = "DataVolumeTemplate"
    ISO = "ISO"


_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
# Gson's US DateFormat.DEFAULT, e.g. "Nov 14, 2017 10:20:57 PM" (§9); \s also covers the narrow
# no-break space newer JDKs put before AM/PM.
_ZSTACK_DATE = re.compile(
    r"^\s*([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),\s*(\d{4}),?\s+(\d{1,2}):(\d{2}):(\d{2})\s*([AaPp][Mm])\s*$"
)


def parse_zstack_date(value: Any) -> datetime | None:
    """A ZStack timestamp as a naive datetime in the node's zone, or None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Epoch milliseconds (how Java serializes Timestamp in some JSON configurations).
        return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc).replace(tzinfo=None)
    if not isinstance(value, str):
        return None
    match = _ZSTACK_DATE.match(value)
    if match:
        mon, day, year, hour, minute, second, ampm = match.groups()
        month = _MONTHS.get(mon.lower())
        hour_i = int(hour) % 12 + (12 if ampm.lower() == "pm" else 0)
        if month is not None:
            try:
                return datetime(int(year), month, int(day), hour_i, int(minute), int(second))
            except ValueError:
                return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def _to_int(value: Any) -> Any:
    """Accept 8589934592, 8.589934592E9, "8.589934592E9" and 0.0 alike (§9)."""
    if value is None or isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return value
        if number == number.to_integral_value():
            return int(number)
    return value


def _enum_or_text(enum: type[Enum]):
    def convert(value: Any) -> Any:
        if value is None or isinstance(value, enum):
            return value
        try:
            return enum(value)
        except ValueError:
            return str(value)

    return BeforeValidator(convert)


ZInt = Annotated[int | None, BeforeValidator(_to_int)]
ZDate = Annotated[datetime | None, BeforeValidator(parse_zstack_date)]
VmStateValue = Annotated[VmState | str | None, _enum_or_text(VmState)]
ImageStateValue = Annotated[ImageState | str | None, _enum_or_text(ImageState)]
ImageStatusValue = Annotated[ImageStatus | str | None, _enum_or_text(ImageStatus)]
MediaTypeValue = Annotated[ImageMediaType | str | None, _enum_or_text(ImageMediaType)]


class ZStackModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        use_enum_values=False,
    )


class ErrorCode(ZStackModel):
    """ZStack's ErrorCode (§3.6); ``cause`` nests, ``causes`` only on ErrorCodeList."""

    code: str | None = None
    description: str | None = None
    details: str | None = None
    elaboration: str | None = None
    location: str | None = None
    cost: str | None = None
    cause: ErrorCode | None = None
    causes: list[ErrorCode] | None = None
    opaque: dict[str, Any] | None = None


class Session(ZStackModel):
    """SessionInventory (§1.1). The UUID is a bearer credential: it is kept out of repr."""

    uuid: str = Field(repr=False)
    account_uuid: str | None = None
    user_uuid: str | None = None
    user_type: str | None = None
    expired_date: ZDate = None
    create_date: ZDate = None


class VmCdRom(ZStackModel):
    """VmCdRomInventory (§7.1)."""

    uuid: str
    vm_instance_uuid: str | None = None
    device_id: ZInt = None
    iso_uuid: str | None = None
    iso_install_path: str | None = None
    name: str | None = None
    description: str | None = None
    protocol: str | None = None
    create_date: ZDate = None
    last_op_date: ZDate = None

    @property
    def is_empty(self) -> bool:
        return not self.iso_uuid


def _device_order(cdrom: VmCdRom) -> tuple[int, int, str]:
    return (cdrom.device_id is None, cdrom.device_id or 0, cdrom.uuid)


class VmInstance(ZStackModel):
    """VmInstanceInventory (§5.1); ``cdroms`` comes from ``vmCdRoms``, sorted by device id (§7.1)."""

    uuid: str
    name: str | None = None
    description: str | None = None
    zone_uuid: str | None = None
    cluster_uuid: str | None = None
    image_uuid: str | None = None
    host_uuid: str | None = None
    last_host_uuid: str | None = None
    instance_offering_uuid: str | None = None
    root_volume_uuid: str | None = None
    platform: str | None = None
    architecture: str | None = None
    guest_os_type: str | None = None
    default_l3_network_uuid: str | None = None
    type: str | None = None
    hypervisor_type: str | None = None
    memory_size: ZInt = None
    cpu_num: ZInt = None
    cpu_speed: ZInt = None
    allocator_strategy: str | None = None
    state: VmStateValue = None
    create_date: ZDate = None
    last_op_date: ZDate = None
    cdroms: list[VmCdRom] = Field(default_factory=list, alias="vmCdRoms")
    vm_nics: list[dict[str, Any]] = Field(default_factory=list)
    all_volumes: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("cdroms", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("cdroms")
    @classmethod
    def _sorted_by_device(cls, value: list[VmCdRom]) -> list[VmCdRom]:
        return sorted(value, key=_device_order)

    @property
    def attached_iso_uuids(self) -> list[str]:
        """ISO UUIDs in this VM's CD-ROMs, in device order."""
        return [c.iso_uuid for c in self.cdroms if c.iso_uuid]

    def cdrom_with_iso(self, iso_uuid: str) -> VmCdRom | None:
        """The CD-ROM holding ``iso_uuid``, or None.

        ZStack stores UUIDs as 32 lowercase hex characters; the comparison ignores case, so it matches what
        the node stores whether the caller's UUID was typed in lower or upper case.
        """
        wanted = iso_uuid.lower()
        return next((c for c in self.cdroms if c.iso_uuid and c.iso_uuid.lower() == wanted), None)

    def cdrom(self, cdrom_uuid: str) -> VmCdRom | None:
        """The CD-ROM with this UUID (case ignored, as in ``cdrom_with_iso``), or None."""
        wanted = cdrom_uuid.lower()
        return next((c for c in self.cdroms if c.uuid.lower() == wanted), None)

    @property
    def empty_cdroms(self) -> list[VmCdRom]:
        """The CD-ROMs without an ISO, in device order: the first is where ZStack attaches (§5.2 step 8)."""
        return [c for c in self.cdroms if c.is_empty]

    @property
    def state_name(self) -> str | None:
        return None if self.state is None else str(self.state)

    @property
    def is_transitional(self) -> bool:
        """In a state that ends by itself (``TRANSITIONAL_VM_STATES``): wait for it."""
        return self.state_name in TRANSITIONAL_VM_STATES

    @property
    def allows_iso_operations(self) -> bool:
        """In a state where ZStack attaches and detaches ISOs (``ISO_OPERABLE_VM_STATES``)."""
        return self.state_name in ISO_OPERABLE_VM_STATES

    @property
    def is_gone(self) -> bool:
        """Destroyed or being expunged (``GONE_VM_STATES``): no ISO goes in or out until it is recovered."""
        return self.state_name in GONE_VM_STATES


class ImageBackupStorageRef(ZStackModel):
    id: ZInt = None
    image_uuid: str | None = None
    backup_storage_uuid: str | None = None
    install_path: str | None = None
    status: str | None = None
    export_md5_sum: str | None = None
    export_url: str | None = None
    create_date: ZDate = None
    last_op_date: ZDate = None


class Image(ZStackModel):
    """ImageInventory (§8)."""

    uuid: str
    name: str | None = None
    description: str | None = None
    state: ImageStateValue = None
    status: ImageStatusValue = None
    size: ZInt = None
    actual_size: ZInt = None
    md5_sum: str | None = None
    url: str | None = None
    media_type: MediaTypeValue = None
    guest_os_type: str | None = None
    type: str | None = None
    platform: str | None = None
    architecture: str | None = None
    format: str | None = None
    system: bool | None = None
    virtio: bool | None = None
    create_date: ZDate = None
    last_op_date: ZDate = None
    backup_storage_refs: list[ImageBackupStorageRef] = Field(default_factory=list)

    @field_validator("backup_storage_refs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def is_iso(self) -> bool:
        return self.media_type == ImageMediaType.ISO

    @property
    def is_deleted(self) -> bool:
        """Deleted but not yet expunged: it still reads back, attached to no VM (docs/out-of-band.md)."""
        return self.status == ImageStatus.DELETED

    @property
    def is_enabled_and_ready(self) -> bool:
        """What the candidate API requires of an ISO (§4.3): state Enabled and status Ready."""
        return self.state == ImageState.ENABLED and self.status == ImageStatus.READY
