"""Queries (§4): QueryVmInstance, QueryVmCdRom, QueryImage, the attach candidates (§4.3) and GetVersion."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .inventory import Inventory
from .records import (
    BS_FIELDS,
    BS_REF_FIELDS,
    CDROM_FIELDS,
    DATE_FIELDS,
    IMAGE_FIELDS,
    NIC_FIELDS,
    VM_FIELDS,
    VOLUME_FIELDS,
    parse_zstack_date,
    render,
    value_of,
)
from .sessions import Auth, Identity

# Query metadata (§4): top-level fields and the expanded (nested) queries each inventory supports.
QUERY_KINDS: dict[str, dict[str, Any]] = {
    "vmInstance": {
        "class": "org.zstack.header.vm.VmInstanceInventory",
        "fields": VM_FIELDS,
        "nested": {"vmCdRoms": CDROM_FIELDS, "vmNics": NIC_FIELDS, "allVolumes": VOLUME_FIELDS},
    },
    "vmCdRom": {
        "class": "org.zstack.header.vm.cdrom.VmCdRomInventory",
        "fields": CDROM_FIELDS,
        "nested": {"vmInstance": VM_FIELDS},
    },
    "image": {
        "class": "org.zstack.header.image.ImageInventory",
        "fields": IMAGE_FIELDS,
        "nested": {"backupStorageRefs": BS_REF_FIELDS, "backupStorageRef": BS_REF_FIELDS, "backupStorage": BS_FIELDS},
    },
}
QUERY_OPS = ("!=", ">=", "<=", "!?=", "!~=", "~=", "?=", "=", ">", "<", "is null", "not null")  # §4.2 order
# RestServer.java:1052-1072 @ 5a29293 (QUERY_OP_MAPPING): the QueryOp each operator stands for
QUERY_OP_NAMES = {
    "!=": "!=", ">=": ">=", "<=": "<=", "!?=": "not in", "!~=": "not like", "~=": "like", "?=": "in", "=": "=",
    ">": ">", "<": "<", "is null": "is null", "not null": "is not null",
}  # fmt: skip
# @APINoSee fields of a top-level query row: QueryFacadeImpl.dropAPINoSee nulls them (QueryFacadeImpl.java:510-552
# @ 5a29293); every other VM inventory (async results, candidates) carries internalId.
QUERY_API_NO_SEE = {"vmInstance": ("internalId",)}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str | None


@dataclass
class QuerySpec:
    conditions: list[Condition] = field(default_factory=list)
    limit: int = 1000  # §4.2 default
    start: int = 0
    count: bool = False
    reply_with_count: bool = False
    sort: str | None = None
    fields: list[str] | None = None


def _like(pattern: str) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _coerce(sample: Any, text: str, field_name: str) -> Any:
    """Convert a q= value to the type of the field it is compared with (ZQL binds typed parameters)."""
    try:
        if isinstance(sample, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if field_name in DATE_FIELDS:
            try:
                return float(text) / 1000.0  # epoch milliseconds
            except ValueError:
                return parse_zstack_date(text)
        if isinstance(sample, int):
            return int(text)
        if isinstance(sample, float):
            return float(text)
    except ValueError:
        raise ApiError("SYS.1000", f"cannot convert the value[{text}] to the type of the field[{field_name}]") from None
    return text


def _match_one(value: Any, cond: Condition, field_name: str) -> bool:
    op = cond.op
    if op == "is null":
        return value is None
    if op == "not null":
        return value is not None
    if value is None:
        return False  # SQL: a comparison with NULL is never true
    text = cond.value or ""
    if op in ("~=", "!~="):
        hit = _like(text).fullmatch(str(value)) is not None
        return hit if op == "~=" else not hit
    if op in ("?=", "!?="):
        members = [_coerce(value, v, field_name) for v in text.split(",")]
        return (value in members) if op == "?=" else (value not in members)
    other = _coerce(value, text, field_name)
    if op == "=":
        return value == other
    if op == "!=":
        return value != other
    try:
        return {">": value > other, "<": value < other, ">=": value >= other, "<=": value <= other}[op]
    except TypeError:
        return False


def _unknown_field(kind: str, name: str) -> ApiError:
    # §4.2: ZQL throws on an unknown field; the reply is 503 SYS.1000
    return ApiError("SYS.1000", f"cannot find field[{name}] in the inventory[{QUERY_KINDS[kind]['class']}]")


class Queries:
    """The synchronous reads: a session is checked (§1.5: 503 ID.1001 directly), nothing is queued."""

    def __init__(self, lock: threading.RLock, inventory: Inventory, identity: Identity) -> None:
        self._lock = lock
        self._inventory = inventory
        self._identity = identity

    def get_version(self) -> dict[str, Any]:
        """§9 GetVersion (no auth)."""
        return {"version": self._inventory.version}

    def _views(self, kind: str) -> list[dict[str, Any]]:
        inv = self._inventory
        if kind == "vmInstance":
            return [inv.vm_view(vm) for vm in inv.vms.values()]
        if kind == "vmCdRom":
            out = []
            for cd in inv.cdroms.values():
                view = dict(vars(cd))
                vm = inv.vms.get(cd.vmInstanceUuid)
                view["vmInstance"] = [vm] if vm else []
                out.append(view)
            return out
        out = []
        for image in inv.images.values():
            view = dict(vars(image))
            refs = image.backupStorageRefs
            view["backupStorageRef"] = refs
            view["backupStorage"] = [inv.backup_storages[r.backupStorageUuid] for r in refs
                                     if r.backupStorageUuid in inv.backup_storages]  # fmt: skip
            out.append(view)
        return out

    @staticmethod
    def _condition_values(kind: str, view: dict[str, Any], cond: Condition) -> list[Any]:
        meta = QUERY_KINDS[kind]
        name = cond.field
        if name in ("__systemTag__", "__userTag__"):
            return []  # the simulator keeps no tags
        if "." in name:
            head, tail = name.split(".", 1)
            if head not in meta["nested"] or tail not in meta["nested"][head]:
                raise _unknown_field(kind, name)
            return [value_of(item, tail) for item in view.get(head) or []]
        if name not in meta["fields"] or name in meta["nested"]:
            raise _unknown_field(kind, name)
        return [view.get(name)]

    def query(self, auth: Auth, kind: str, spec: QuerySpec) -> dict[str, Any]:
        """§4.1-4.2 QueryVmInstance / QueryVmCdRom / QueryImage."""
        meta = QUERY_KINDS[kind]
        with self._lock:
            self._identity.check(auth)  # §1.5: synchronous APIs answer 503 ID.1001 directly
            rows = [
                view
                for view in self._views(kind)
                if all(
                    any(_match_one(v, c, c.field.split(".")[-1]) for v in self._condition_values(kind, view, c))
                    for c in spec.conditions
                )
            ]
            total = len(rows)
            # QueryVisitor.setPaging passes limit/start to JPA (QueryVisitor.java:186-193 @ 5a29293), which refuses
            # negatives; QueryFacadeImpl wraps the exception (L378-379) and @MessageSafe makes it SYS.1000. The
            # texts are Hibernate's (AbstractProducedQuery, 5.4 source; ZStack pins 5.3.26: UNCONFIRMED wording).
            if spec.limit < 0:
                raise ApiError("SYS.1000", "java.lang.IllegalArgumentException: max-results cannot be negative")
            if spec.start < 0:
                details = f"java.lang.IllegalArgumentException: first-result value cannot be negative : {spec.start}"
                raise ApiError("SYS.1000", details)
            if spec.count:
                return {"total": total}
            if spec.sort:
                direction, name = spec.sort[0], spec.sort.lstrip("+-").strip()
                if name not in meta["fields"] or name in meta["nested"]:
                    raise _unknown_field(kind, name)
                # MySQL puts NULLs first in ascending order
                rows.sort(key=lambda r: (r.get(name) is not None, r.get(name) or 0), reverse=direction == "-")
            rows = rows[spec.start :][: spec.limit]
            fields = meta["fields"]
            if spec.fields:
                for name in spec.fields:
                    if name not in fields:
                        raise _unknown_field(kind, name)
                fields = tuple(f for f in fields if f in spec.fields)
            fields = tuple(f for f in fields if f not in QUERY_API_NO_SEE.get(kind, ()))
            out: dict[str, Any] = {"inventories": [render(r, fields) for r in rows]}
            if spec.reply_with_count:
                out["total"] = total
            return out

    def iso_candidates(self, auth: Auth, vm_uuid: str) -> dict[str, Any]:
        """§4.3 GetCandidateIsoForAttachingVm."""
        inv = self._inventory
        with self._lock:
            vm = inv.find_vm(vm_uuid, "vmInstanceUuid")
            self._identity.check(auth)
            if vm.state not in ("Running", "Stopped"):
                return {"inventories": []}
            arch = inv.clusters.get(vm.clusterUuid, {}).get("architecture")
            attached = set(inv.isos_of(vm_uuid))
            out = [
                render(image, IMAGE_FIELDS)
                for image in inv.images.values()
                if image.mediaType == "ISO"
                and image.state == "Enabled"
                and image.status == "Ready"
                and not image.system
                and image.architecture in (None, arch)
                and inv.zone_backup_storages(vm, image)
                and image.uuid not in attached
            ]
            return {"inventories": out}

    def vm_candidates(self, auth: Auth, iso_uuid: str) -> dict[str, Any]:
        """§4.3 GetCandidateVmForAttachingIso (does not exclude VMs that already have the ISO)."""
        inv = self._inventory
        with self._lock:
            iso = inv.find_image(iso_uuid, "isoUuid")
            self._identity.check(auth)
            out = [
                inv.vm_inventory(vm)
                for vm in inv.vms.values()
                if vm.state in ("Running", "Stopped") and inv.zone_backup_storages(vm, iso)
            ]
            return {"inventories": out}
