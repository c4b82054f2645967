"""Domain model of the simulated ZStack management node: inventory, rules, sessions, jobs and per-VM queues.

No HTTP here (like moto's models.py): the wire layer parses a request, calls one method of `ZStackNode` and
renders what it returns or the `ApiError` it raises. Rules run in the order the real node runs them, each with
its error code beside it and a citation of shared/zstack-api.md (§x.y).
"""

from __future__ import annotations

import base64
import collections
import copy
import hashlib
import heapq
import hmac
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .seed import MAX_CDROMS, VM_STATES, load_seed_file

log = logging.getLogger("zstack_iso.simulator")

# §3.6: description is fixed per code.
ERROR_DESCRIPTIONS = {
    "SYS.1000": "An internal error happened in system",
    "SYS.1001": "A message or a operation timeout",
    "SYS.1003": "A resource can not be found",
    "SYS.1006": "An operation failed",
    "SYS.1007": "One or more API argument is invalid",
    "ID.1000": "Unable to authenticate a user",
    "ID.1001": "The session is invalid, either wrong session id or the session has been expired",
    "ID.1002": "The user doesn't have permission to perform the operation",
    # UNCONFIRMED wording: conf/errorCodes/identity.xml was not read for this code (§1.1).
    "ID.1006": "The number of concurrent sessions has reached the limit",
    "VM.1010": "VM is not in state that allows required operation",
}

DEFAULT_API_TIMEOUT_MS = 1800000  # §3.3 "30m"
COMPLETED_JOB_TTL_SECONDS = 10800  # §3.4 rest.completedApi.expiredPeriod
MAX_KEPT_JOBS = 20000
MAX_SESSIONS_PER_ACCOUNT = 500  # §1.1 identity.session.maxConcurrent
STATE_FORMAT_VERSION = 1
UUID_RE = re.compile(r"^[0-9a-fA-F]{32}$")
# PortApiValidator.java:81 @ 5a29293: what an unknown UUID must look like (a dash-less RFC 4122 v1-5 UUID, lower
# case) for an @APIParam(successIfResourceNotExisting=true) field to succeed at once
RESOURCE_UUID_RE = re.compile(r"[0-9a-f]{8}[0-9a-f]{4}[1-5][0-9a-f]{3}[89ab][0-9a-f]{3}[0-9a-f]{12}")
# ApiMessageParamValidator.java:18-21,111-116 @ 5a29293 names itself, not the API, in its errors
PARAM_VALIDATOR = "org.zstack.header.message.ApiMessageParamValidator"

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


# Inventory field order follows the Java inventories (Gson writes declared fields in order, §9); the file and
# lines are those of [Z] header/src/main/java/org/zstack/header/... @ 5a29293.
VM_FIELDS = (  # vm/VmInstanceInventory.java:153-273: internalId after state, guestOsType last
    "uuid", "name", "description", "zoneUuid", "clusterUuid", "imageUuid", "hostUuid", "lastHostUuid",
    "instanceOfferingUuid", "rootVolumeUuid", "platform", "architecture", "defaultL3NetworkUuid", "type",
    "hypervisorType", "memorySize", "reservedMemorySize", "cpuNum", "cpuSpeed", "allocatorStrategy", "createDate",
    "lastOpDate", "state", "internalId", "vmNics", "allVolumes", "vmCdRoms", "guestOsType",
)  # fmt: skip
CDROM_FIELDS = (  # vm/cdrom/VmCdRomInventory.java:18-37
    "uuid", "vmInstanceUuid", "deviceId", "isoUuid", "isoInstallPath", "name", "description", "protocol",
    "createDate", "lastOpDate",
)  # fmt: skip
IMAGE_FIELDS = (  # image/ImageInventory.java:27-50 (systemTags is never set by valueOf)
    "uuid", "name", "description", "state", "status", "size", "actualSize", "md5Sum", "url", "mediaType",
    "guestOsType", "type", "platform", "architecture", "format", "system", "virtio", "createDate", "lastOpDate",
    "backupStorageRefs",
)  # fmt: skip
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
BS_REF_FIELDS = (  # image/ImageBackupStorageRefInventory.java:24-34
    "id", "imageUuid", "backupStorageUuid", "installPath", "status", "exportMd5Sum", "exportUrl", "createDate",
    "lastOpDate",
)  # fmt: skip
BS_FIELDS = ("uuid", "name", "description", "url", "type", "state", "status", "attachedZoneUuids",
             "createDate", "lastOpDate")  # fmt: skip
SESSION_FIELDS = ("uuid", "accountUuid", "userUuid", "userType", "expiredDate", "createDate")
_NESTED_FIELDS = {
    "vmCdRoms": CDROM_FIELDS, "vmNics": NIC_FIELDS, "allVolumes": VOLUME_FIELDS, "backupStorageRefs": BS_REF_FIELDS,
    "usedIps": USED_IP_FIELDS,
}  # fmt: skip
# @APINoSee fields of a top-level query row: QueryFacadeImpl.dropAPINoSee nulls them (QueryFacadeImpl.java:510-552
# @ 5a29293); every other VM inventory (async results, candidates) carries internalId.
QUERY_API_NO_SEE = {"vmInstance": ("internalId",)}

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
DATE_FIELDS = frozenset({"createDate", "lastOpDate", "expiredDate", "lastDetachDate", "lastAttachDate"})

# §5.2 step 4 / §6.2 step 3: states in which the VM queue accepts ISO operations.
ISO_OP_STATES = ("Running", "Stopped", "Paused")


def render(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """A wire inventory: declared order, nulls omitted (§9), dates formatted, nested lists rendered."""
    out: dict[str, Any] = {}
    for name in fields:
        value = record.get(name)
        if value is None:
            continue
        if name in DATE_FIELDS:
            value = zstack_date(value)
        elif isinstance(value, list) and name in _NESTED_FIELDS:
            value = [render(item, _NESTED_FIELDS[name]) for item in value]
        out[name] = value
    return out


class ApiError(Exception):
    """A ZStack ErrorCode (§3.6): rendered as {"error": {...}} with HTTP 503."""

    def __init__(self, code: str, details: str | None, cause: ApiError | None = None) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.cause = cause

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "description": ERROR_DESCRIPTIONS.get(self.code, "An operation failed"),
        }
        if self.details is not None:  # null fields are omitted (§9)
            out["details"] = self.details
        if self.cause is not None:
            out["cause"] = self.cause.to_dict()
        else:
            out["cost"] = "0ms"  # §3.6: set when elaboration is on and the error has no cause
        return out


def java_trim(text: str) -> str:
    """Java's String.trim(): strips the characters <= U+0020 at both ends (not other Unicode whitespace)."""
    return text.strip("".join(chr(c) for c in range(33)))


def operr(details: str) -> ApiError:
    return ApiError("SYS.1006", details)


def argerr(details: str) -> ApiError:
    return ApiError("SYS.1007", details)


def not_found(field_name: str, uuid_: str, vo_type: str) -> ApiError:
    # §5.2 step 1 (PortApiValidator)
    return ApiError("SYS.1003", f"invalid field[{field_name}], resource[uuid:{uuid_}, type:{vo_type}] not found")


def state_error(vm: dict[str, Any], allowed: tuple[str, ...], message: str) -> ApiError:
    # §5.2 step 4: SYS.1006 with cause VM.1010 (AbstractVmInstance.validateOperationByState)
    details = (
        f"current vm instance state[{vm['state']}] doesn't allow to proceed message[{message}], "
        f"allowed states are [{', '.join(allowed)}]"
    )
    return ApiError("SYS.1006", details, cause=ApiError("VM.1010", details))


def java_split(text: str, separator: str) -> list[str]:
    """Java's String.split with a literal separator: trailing empty strings are dropped; no match gives [text]."""
    if separator not in text:
        return [text]
    parts = text.split(separator)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def find_tag_value(system_tags: list[str], tag_format: str, token: str) -> str | None:
    """SystemTagUtils.findTagValue (SystemTagUtils.java:19-31 @ 5a29293): the token's value in the first tag that
    TagUtils.isMatch accepts (TagUtils.java:33-67): same first character, as many `::` parts as the format (after
    Java's split), literal parts equal. So `cdromUuid::` and `cdromUuid::a::b` are not cdromUuid tags at all."""
    fmt = java_split(tag_format, "::")
    for tag in system_tags:
        if tag and tag[0] != tag_format[0]:
            continue
        parts = java_split(tag, "::")
        if len(parts) != len(fmt):
            continue
        if all(f.startswith("{") or f == p for f, p in zip(fmt, parts, strict=True)):
            return parts[fmt.index("{" + token + "}")]
    return None


def invalid_value(field_name: str, valid: tuple[str, ...], value: Any) -> ApiError:
    # ApiMessageParamValidator.java:111-116 @ 5a29293 (@APIParam validValues): SYS.1007
    return argerr(
        f"valid value for field[{field_name}] of message[{PARAM_VALIDATOR}] are [{', '.join(valid)}], but {value} found"
    )


class _Answered(Exception):
    """Raised by an interceptor when the node answers the API before any queue (the job succeeds at once)."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("answered")
        self.result = result


def success_if_not_existing(value: str, field_name: str = "uuid") -> None:
    """PortApiValidator.java:74-101 @ 5a29293, for an @APIParam(successIfResourceNotExisting=true) field naming
    nothing: SYS.1003 unless the value has the shape of a UUID, else the API's event is published at once (success,
    an empty result) and routing stops: before the session check, so even a bad session gets the success."""
    if not RESOURCE_UUID_RE.fullmatch(value):
        raise ApiError("SYS.1003", f"invalid value[{value}] of field [{field_name}]")
    raise _Answered({})


class DuplicateJobError(Exception):
    """An X-Job-UUID that a POST/PUT/DELETE already used (§3.2)."""


@dataclass
class Auth:
    """Who is calling: an OAuth session UUID (checked later, in the interceptor) or a verified AccessKey."""

    session_uuid: str | None = None
    access_key_id: str | None = None


@dataclass
class SimConfig:
    jobSeconds: float = 1.0
    latencyMs: float = 0.0
    sessionTimeoutSeconds: int = 7200  # §1.4 identity.session.timeout
    # Refuse, as the simulator did before, what the open-source node accepts on attach: an ISO that is not
    # Enabled and Ready, and a cdromUuid:: tag naming another VM's CD-ROM (a commercial build may check them)
    strictAttach: bool = False


@dataclass
class Job:
    uuid: str
    api: str
    generation: int
    timeout_ms: int = DEFAULT_API_TIMEOUT_MS
    state: str = "running"  # running | done | lost (in flight when the node stopped)
    http_status: int = 202
    body: dict[str, Any] | None = None
    expired: bool = False  # polls answer 404 (§3.4 "expired job"; also the expire_job fault)
    injected_error: dict[str, Any] | None = None  # the job_error fault
    completed_at: float | None = None


class _Scheduler:
    """One timer thread for every delayed action (job timeouts, injected job errors, state holds)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def call_later(self, seconds: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                return
            self._seq += 1
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, seconds), self._seq, fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="zstack-sim-timers", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("simulator timer failed")


class _VmQueue:
    """One VM's FIFO (§10: chainSubmit with sync level 1): one drain thread at a time."""

    def __init__(self) -> None:
        self.tasks: collections.deque[Callable[[], None]] = collections.deque()
        self.busy = False


# Lifecycle APIs (§13): allowed states, states where the call is a no-op success, transitional and final state.
@dataclass(frozen=True)
class _Lifecycle:
    message: str
    allowed: tuple[str, ...]
    noop: tuple[str, ...]
    transitional: str | None
    final: str | None  # None: the VM is gone (expunge)
    returns_inventory: bool


LIFECYCLE = {
    "start": _Lifecycle("org.zstack.header.vm.APIStartVmInstanceMsg", ("Stopped", "Running"), ("Running",),
                        "Starting", "Running", True),
    "stop": _Lifecycle("org.zstack.header.vm.APIStopVmInstanceMsg", ("Running", "Stopped", "Paused", "Unknown"),
                       ("Stopped",), "Stopping", "Stopped", True),
    "reboot": _Lifecycle("org.zstack.header.vm.APIRebootVmInstanceMsg", ("Running",), (), "Rebooting", "Running",
                         True),
    "destroy": _Lifecycle("org.zstack.header.vm.APIDestroyVmInstanceMsg",
                          ("Running", "Stopped", "Paused", "Unknown", "Crashed", "Created", "Destroyed"),
                          ("Destroyed",), "Destroying", "Destroyed", False),
    "recover": _Lifecycle("org.zstack.header.vm.APIRecoverVmInstanceMsg", ("Destroyed",), (), None, "Stopped",
                          True),
    "expunge": _Lifecycle("org.zstack.header.vm.APIExpungeVmInstanceMsg", ("Destroyed",), (), "Expunging", None,
                          False),
}  # fmt: skip

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


class ZStackNode:
    """A management node: inventory + rules + sessions + jobs. Thread-safe; one lock, never held while sleeping."""

    def __init__(
        self,
        seed: dict[str, Any] | None = None,
        *,
        job_seconds: float = 1.0,
        latency_ms: float = 0.0,
        session_timeout_seconds: int = 7200,
        state_file: str | Path | None = None,
        strict_attach: bool = False,
    ) -> None:
        self._seed = seed if seed is not None else load_seed_file()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._initial_config = SimConfig(
            float(job_seconds), float(latency_ms), int(session_timeout_seconds), bool(strict_attach)
        )
        self.config = SimConfig(**asdict(self._initial_config))
        self.generation = 0
        self._queues: dict[str, _VmQueue] = {}
        self._scheduler = _Scheduler()
        self._state_file = Path(state_file) if state_file else None
        self.sessions: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self._load_inventory(self._seed)
        if self._state_file and self._state_file.exists():
            self._restore(json.loads(self._state_file.read_text(encoding="utf-8")))
        self._persist()

    # ------------------------------------------------------------------ inventory and persistence

    def _load_inventory(self, seed: dict[str, Any]) -> None:
        inv = copy.deepcopy(seed)
        self.version: str = inv["version"]
        self.accounts: dict[str, dict[str, Any]] = inv["accounts"]
        self.users: dict[str, dict[str, Any]] = inv["users"]
        self._access_keys: dict[str, dict[str, Any]] = inv["accessKeys"]
        self.zones: dict[str, dict[str, Any]] = inv["zones"]
        self.clusters: dict[str, dict[str, Any]] = inv["clusters"]
        self.hosts: dict[str, dict[str, Any]] = inv["hosts"]
        self.primary_storages: dict[str, dict[str, Any]] = inv["primaryStorages"]
        self.backup_storages: dict[str, dict[str, Any]] = inv["backupStorages"]
        self.images: dict[str, dict[str, Any]] = inv["images"]
        self.vms: dict[str, dict[str, Any]] = inv["vmInstances"]
        self.cdroms: dict[str, dict[str, Any]] = inv["vmCdRoms"]
        next_id = max((vm.get("internalId") or 0 for vm in self.vms.values()), default=0) + 1
        for vm in self.vms.values():  # a state file written before VMs had an internalId
            if vm.get("internalId") is None:
                vm["internalId"], next_id = next_id, next_id + 1

    def _snapshot(self) -> dict[str, Any]:
        """The persistent state (called under the lock). VMs in a transitional or held state are saved settled."""
        vms = {}
        for uid, vm in self.vms.items():
            saved = {k: v for k, v in vm.items() if k != "_settledState"}
            if "_settledState" in vm:
                saved["state"] = vm["_settledState"]
            vms[uid] = saved
        jobs = {}
        for uid, job in self.jobs.items():
            entry: dict[str, Any] = {"api": job.api, "expired": job.expired}
            if job.state == "done":
                entry.update(httpStatus=job.http_status, body=job.body, completedAt=job.completed_at)
            else:
                entry["state"] = "lost"  # §3.4: a job in flight when the node stops is lost; its poll answers 404
            jobs[uid] = entry
        return {
            "formatVersion": STATE_FORMAT_VERSION,
            "inventory": {
                "version": self.version, "accounts": self.accounts, "users": self.users,
                "accessKeys": self._access_keys, "zones": self.zones, "clusters": self.clusters,
                "hosts": self.hosts, "primaryStorages": self.primary_storages,
                "backupStorages": self.backup_storages, "images": self.images, "vmInstances": vms,
                "vmCdRoms": self.cdroms,
            },
            "sessions": self.sessions,
            "jobs": jobs,
        }  # fmt: skip

    def _restore(self, data: dict[str, Any]) -> None:
        if data.get("formatVersion") != STATE_FORMAT_VERSION:
            raise ValueError(f"state file format {data.get('formatVersion')!r} is not {STATE_FORMAT_VERSION}")
        self._load_inventory(data["inventory"])
        self.sessions = data.get("sessions", {})
        self.jobs = {}
        for uid, entry in data.get("jobs", {}).items():
            job = Job(uuid=uid, api=entry.get("api", ""), generation=self.generation, expired=entry.get("expired"))
            if entry.get("state") == "lost":
                job.state = "lost"
            else:
                job.state, job.http_status = "done", entry["httpStatus"]
                job.body, job.completed_at = entry["body"], entry["completedAt"]
            self.jobs[uid] = job

    def _persist(self) -> None:
        """Write the state file atomically (tmp file, fsync, os.replace).

        It runs under the model lock, in the same critical section as the change it saves, so whatever a client
        has seen (a 202, a job result, an attached ISO) is on disk before anyone can see it.
        """
        if self._state_file is None or self._stop.is_set():
            return  # a stopped node writes nothing more (a restarted one may own the file now)
        with self._lock:
            data = json.dumps(self._snapshot(), separators=(",", ":"))
            directory = self._state_file.parent
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self._state_file.name + ".", suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self._state_file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    @property
    def access_keys(self) -> dict[str, str]:
        """AccessKey id -> secret, for every key of the inventory."""
        with self._lock:
            return {k: v["secret"] for k, v in self._access_keys.items()}

    @property
    def default_access_key(self) -> tuple[str, str]:
        with self._lock:
            ak = next(iter(self._access_keys.values()))
            return ak["id"], ak["secret"]

    # ------------------------------------------------------------------ timers, queues, jobs

    def _later(self, seconds: float, fn: Callable[[], None]) -> None:
        """Run fn after `seconds` on the node's timer thread (no busy wait); dropped by close()."""
        self._scheduler.call_later(seconds, fn)

    def close(self) -> None:
        """Stop timers and job threads; in-flight jobs are abandoned (a crash loses them, §3.4)."""
        self._stop.set()
        self._scheduler.close()

    def _prune_jobs(self, now: float) -> None:
        stale = [u for u, j in self.jobs.items() if j.completed_at and now - j.completed_at > COMPLETED_JOB_TTL_SECONDS]
        for u in stale:
            del self.jobs[u]
        overflow = len(self.jobs) - MAX_KEPT_JOBS
        if overflow > 0:
            done = sorted((j.completed_at, u) for u, j in self.jobs.items() if j.completed_at)
            for _, u in done[:overflow]:
                del self.jobs[u]

    def job_uuid_used(self, job_uuid: str) -> bool:
        with self._lock:
            return job_uuid in self.jobs

    def accept_job(
        self,
        api: str,
        job_uuid: str | None = None,
        timeout_ms: int | None = None,
        *,
        injected_error: dict[str, Any] | None = None,
        expired: bool = False,
    ) -> Job:
        """§3.3: register an async job (the 202). Raises DuplicateJobError for a reused X-Job-UUID (§3.2)."""
        with self._lock:
            self._prune_jobs(time.time())
            uid = job_uuid or uuid.uuid4().hex
            if uid in self.jobs:
                raise DuplicateJobError(uid)
            job = Job(
                uuid=uid,
                api=api,
                generation=self.generation,
                timeout_ms=DEFAULT_API_TIMEOUT_MS if timeout_ms is None else timeout_ms,
                injected_error=injected_error,
                expired=expired,
            )
            self.jobs[uid] = job
            self._persist()
        # ApiTimeoutManagerImpl.java:119-123 @ 5a29293: a set timeout (0 and negative too) is the apiTimeout;
        # what a node does with a timeout <= 0 was not traced (UNCONFIRMED): here it never times the job out.
        if timeout_ms is not None and timeout_ms > 0:
            self._later(timeout_ms / 1000.0, lambda: self._time_out(job))
        return job

    def _time_out(self, job: Job) -> None:
        # A timed-out API reply does not cancel the work already queued on the VM, as on a real node.
        with self._lock:
            if job.generation != self.generation:
                return
            self._finish(job, error=ApiError("SYS.1001", f"API[{job.api}] timeout after {job.timeout_ms}ms"))

    def poll_job(self, job_uuid: str) -> tuple[int, dict[str, Any], str] | None:
        """§3.4: (202, {}) while running, (200, result) or (503, error) when done, with the job's API name;
        None for an unknown job."""
        with self._lock:
            job = self.jobs.get(job_uuid)
            if job is None or job.expired or job.state == "lost":
                return None
            if job.state == "running":
                return 202, {}, job.api
            return job.http_status, copy.deepcopy(job.body or {}), job.api

    def expire_job(self, job_uuid: str) -> None:
        with self._lock:
            job = self.jobs.get(job_uuid)
            if job is not None:
                job.expired = True
                self._persist()

    def _finish(self, job: Job, result: dict[str, Any] | None = None, error: ApiError | None = None) -> None:
        """Complete a job (under the lock) and save the state. A job completes once; later results are dropped."""
        if job.state != "running":
            self._persist()  # the work of a timed-out job still changed the inventory
            return
        job.state = "done"
        job.completed_at = time.time()
        if error is not None:
            job.http_status, job.body = 503, {"error": error.to_dict()}
        else:
            job.http_status, job.body = 200, result or {}
        self._persist()

    def _submit(
        self,
        job: Job,
        intercept: Callable[[], tuple[str, Any]],
        queued: Callable[[Any], Callable[[], dict[str, Any]]],
    ) -> None:
        """Run an async API: interceptors now (concurrently, §1.5 / §10), then the work in the VM's FIFO queue.

        intercept() runs under the lock and returns (queue key, context) or raises ApiError.
        queued(context) runs under the lock when the job reaches the head of the queue: it re-checks and returns
        apply(), which runs after the job's duration and returns the result.
        """
        if job.injected_error is not None:
            error = dict(job.injected_error)
            self._later(self.config.jobSeconds, lambda: self._finish_injected(job, error))
            return
        with self._lock:
            try:
                key, ctx = intercept()
            except _Answered as answered:
                self._finish(job, answered.result)
            except ApiError as exc:
                self._finish(job, error=exc)
            else:
                queue = self._queues.setdefault(key, _VmQueue())
                queue.tasks.append(lambda: self._run_queued(job, queued, ctx))
                if not queue.busy:
                    queue.busy = True
                    threading.Thread(target=self._drain, args=(queue,), name=f"vm-queue-{key}", daemon=True).start()

    def _finish_injected(self, job: Job, error: dict[str, Any]) -> None:
        with self._lock:
            if job.generation == self.generation and job.state == "running":
                job.state, job.completed_at = "done", time.time()
                job.http_status, job.body = 503, {"error": error}
                self._persist()

    def _drain(self, queue: _VmQueue) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not queue.tasks:
                    queue.busy = False
                    return
                task = queue.tasks.popleft()
            task()

    def _run_queued(self, job: Job, queued: Callable[[Any], Callable[[], dict[str, Any]]], ctx: Any) -> None:
        try:
            with self._lock:
                if job.generation != self.generation:
                    return  # the node was reset: the job belongs to a discarded inventory
                try:
                    apply = queued(ctx)
                except ApiError as exc:
                    self._finish(job, error=exc)
                    apply = None
                seconds = self.config.jobSeconds
            if apply is not None:
                if self._stop.wait(seconds):
                    return
                with self._lock:
                    if job.generation != self.generation:
                        return
                    try:
                        self._finish(job, apply())
                    except ApiError as exc:
                        self._finish(job, error=exc)
        except Exception:  # a bug must fail the job, not wedge the VM's queue
            log.exception("job %s (%s) failed", job.uuid, job.api)
            with self._lock:
                self._finish(job, error=ApiError("SYS.1000", f"internal error while running {job.api}"))

    # ------------------------------------------------------------------ sessions and authentication

    def _new_session(self, account_uuid: str, user_uuid: str) -> dict[str, Any]:
        now = time.time()
        for uid in [u for u, s in self.sessions.items() if s["expiredDate"] < now]:
            del self.sessions[uid]
        active = sum(1 for s in self.sessions.values() if s["userUuid"] == user_uuid)
        if active >= MAX_SESSIONS_PER_ACCOUNT:
            # §1.1 identity.session.maxConcurrent; details wording UNCONFIRMED
            raise ApiError("ID.1006", "Login sessions hit limit of max allowed concurrent login sessions")
        session = {
            "uuid": uuid.uuid4().hex,
            "accountUuid": account_uuid,
            "userUuid": user_uuid,
            "expiredDate": now + self.config.sessionTimeoutSeconds,
            "createDate": now,
        }
        self.sessions[session["uuid"]] = session
        return render(session, SESSION_FIELDS)

    def login_by_account(self, account_name: str | None, password: str | None) -> dict[str, Any]:
        """§1.1 LogInByAccount: the password is the SHA-512 hex, compared as a string."""
        with self._lock:
            self._require(account_name, "accountName")
            self._require(password, "password")
            acct = next((a for a in self.accounts.values() if a["name"] == account_name), None)
            if acct is None or acct["_passwordSha512"] != password:
                raise ApiError("ID.1000", "wrong account name or password")  # §1.1
            inventory = self._new_session(acct["uuid"], acct["uuid"])
            self._persist()
        return {"inventory": inventory}

    def login_by_user(
        self, account_name: str | None, account_uuid: str | None, user_name: str | None, password: str | None
    ) -> dict[str, Any]:
        """§1.2 LogInByUser."""
        with self._lock:
            self._require(user_name, "userName")
            self._require(password, "password")
            acct = next(
                (a for a in self.accounts.values() if a["uuid"] == account_uuid or a["name"] == account_name), None
            )
            user = None
            if acct is not None:
                user = next(
                    (u for u in self.users.values() if u["accountUuid"] == acct["uuid"] and u["name"] == user_name),
                    None,
                )
            if user is None or user["_passwordSha512"] != password:
                raise ApiError("ID.1000", "wrong account or username or password")  # §1.2
            inventory = self._new_session(acct["uuid"], user["uuid"])
            self._persist()
        return {"inventory": inventory}

    def logout(self, session_uuid: str) -> dict[str, Any]:
        """§1.3: unknown sessions are a silent no-op; 200 {}."""
        with self._lock:
            if self.sessions.pop(session_uuid, None) is not None:
                self._persist()
        return {}

    def validate_session(self, session_uuid: str) -> dict[str, Any]:
        """§1.3 ValidateSession: never an error, never renews."""
        with self._lock:
            s = self.sessions.get(session_uuid)
            return {"valid": bool(s and s["expiredDate"] >= time.time())}

    def authenticate_access_key(self, key_id: str, signature: str, method: str, date: str, uri: str) -> Auth:
        """§2: HMAC-SHA1(secret, METHOD\\nDate\\n/v1/path) in base64, as the three SDKs sign.

        UNCONFIRMED (closed source): the verifier's error; the simulator answers ID.1000 with the wording the Go
        SDK looks for ("access key id", "wrong accessKey signature").
        """
        with self._lock:
            ak = self._access_keys.get(key_id)
            if ak is None:
                raise ApiError("ID.1000", f"invalid access key id[{key_id}]")
            secret = ak["secret"]
        expected = base64.b64encode(
            hmac.new(secret.encode(), f"{method}\n{date}\n{uri}".encode(), hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise ApiError("ID.1000", "wrong accessKey signature")
        return Auth(access_key_id=key_id)

    def _check_session(self, auth: Auth) -> None:
        """§1.4-1.5: ID.1001 for an unknown or expired session; a valid one slides to now + timeout."""
        if auth.access_key_id is not None:
            return
        s = self.sessions.get(auth.session_uuid or "")
        now = time.time()
        if s is None or s["expiredDate"] < now:
            raise ApiError("ID.1001", "Session expired")
        s["expiredDate"] = now + self.config.sessionTimeoutSeconds

    @staticmethod
    def _require(value: Any, field_name: str) -> None:
        if value is None:  # ApiMessageParamValidator.java:19-21 @ 5a29293: SYS.1007 naming the validator
            raise argerr(f"field[{field_name}] of message[{PARAM_VALIDATOR}] is mandatory, can not be null")

    # ------------------------------------------------------------------ lookups

    def _find_vm(self, vm_uuid: str, field_name: str) -> dict[str, Any]:
        vm = self.vms.get(vm_uuid)
        if vm is None:
            raise not_found(field_name, vm_uuid, "VmInstanceVO")
        return vm

    def _find_image(self, image_uuid: str, field_name: str) -> dict[str, Any]:
        image = self.images.get(image_uuid)
        if image is None:
            raise not_found(field_name, image_uuid, "ImageVO")
        return image

    def _cdroms_of(self, vm_uuid: str) -> list[dict[str, Any]]:
        return sorted((c for c in self.cdroms.values() if c["vmInstanceUuid"] == vm_uuid), key=lambda c: c["deviceId"])

    def _vm_view(self, vm: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in vm.items() if not k.startswith("_")}
        view["vmCdRoms"] = self._cdroms_of(vm["uuid"])
        return view

    def _vm_inventory(self, vm: dict[str, Any]) -> dict[str, Any]:
        return render(self._vm_view(vm), VM_FIELDS)

    def _vm_zone_backup_storages(self, vm: dict[str, Any], iso: dict[str, Any]) -> list[tuple[dict, dict]]:
        """(ref, backup storage) pairs of the ISO on backup storages attached to the VM's zone."""
        pairs = []
        for ref in iso.get("backupStorageRefs", []):
            bs = self.backup_storages.get(ref["backupStorageUuid"])
            if bs is not None and vm["zoneUuid"] in bs.get("attachedZoneUuids", []):
                pairs.append((ref, bs))
        return pairs

    def _vm_primary_storage(self, vm: dict[str, Any]) -> str:
        return next((v["primaryStorageUuid"] for v in vm.get("allVolumes", []) if v.get("type") == "Root"), "")

    # ------------------------------------------------------------------ queries (§4)

    def _views(self, kind: str) -> list[dict[str, Any]]:
        if kind == "vmInstance":
            return [self._vm_view(vm) for vm in self.vms.values()]
        if kind == "vmCdRom":
            out = []
            for cd in self.cdroms.values():
                view = dict(cd)
                vm = self.vms.get(cd["vmInstanceUuid"])
                view["vmInstance"] = [vm] if vm else []
                out.append(view)
            return out
        out = []
        for image in self.images.values():
            view = {k: v for k, v in image.items() if not k.startswith("_")}
            refs = image.get("backupStorageRefs", [])
            view["backupStorageRef"] = refs
            view["backupStorage"] = [self.backup_storages[r["backupStorageUuid"]] for r in refs
                                     if r["backupStorageUuid"] in self.backup_storages]  # fmt: skip
            out.append(view)
        return out

    def _condition_values(self, kind: str, view: dict[str, Any], cond: Condition) -> list[Any]:
        meta = QUERY_KINDS[kind]
        name = cond.field
        if name in ("__systemTag__", "__userTag__"):
            return list(view.get("_systemTags" if name == "__systemTag__" else "_userTags", []))
        if "." in name:
            head, tail = name.split(".", 1)
            if head not in meta["nested"] or tail not in meta["nested"][head]:
                raise self._unknown_field(kind, name)
            return [item.get(tail) for item in view.get(head) or []]
        if name not in meta["fields"] or name in meta["nested"]:
            raise self._unknown_field(kind, name)
        return [view.get(name)]

    @staticmethod
    def _unknown_field(kind: str, name: str) -> ApiError:
        # §4.2: ZQL throws on an unknown field; the reply is 503 SYS.1000
        return ApiError("SYS.1000", f"cannot find field[{name}] in the inventory[{QUERY_KINDS[kind]['class']}]")

    def query(self, auth: Auth, kind: str, spec: QuerySpec) -> dict[str, Any]:
        """§4.1-4.2 QueryVmInstance / QueryVmCdRom / QueryImage."""
        meta = QUERY_KINDS[kind]
        with self._lock:
            self._check_session(auth)  # §1.5: synchronous APIs answer 503 ID.1001 directly
            rows = []
            for view in self._views(kind):
                if all(
                    any(_match_one(v, c, c.field.split(".")[-1]) for v in self._condition_values(kind, view, c))
                    for c in spec.conditions
                ):
                    rows.append(view)
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
                    raise self._unknown_field(kind, name)
                # MySQL puts NULLs first in ascending order
                rows.sort(key=lambda r: (r.get(name) is not None, r.get(name) or 0), reverse=direction == "-")
            rows = rows[spec.start :][: spec.limit]
            fields = meta["fields"]
            if spec.fields:
                for name in spec.fields:
                    if name not in fields:
                        raise self._unknown_field(kind, name)
                fields = tuple(f for f in fields if f in spec.fields)
            fields = tuple(f for f in fields if f not in QUERY_API_NO_SEE.get(kind, ()))
            out: dict[str, Any] = {"inventories": [render(r, fields) for r in rows]}
            if spec.reply_with_count:
                out["total"] = total
            return out

    def iso_candidates(self, auth: Auth, vm_uuid: str) -> dict[str, Any]:
        """§4.3 GetCandidateIsoForAttachingVm."""
        with self._lock:
            vm = self._find_vm(vm_uuid, "vmInstanceUuid")
            self._check_session(auth)
            if vm["state"] not in ("Running", "Stopped"):
                return {"inventories": []}
            arch = self.clusters.get(vm["clusterUuid"], {}).get("architecture")
            attached = {c["isoUuid"] for c in self._cdroms_of(vm_uuid) if c["isoUuid"]}
            out = []
            for image in self.images.values():
                if (
                    image["mediaType"] == "ISO"
                    and image["state"] == "Enabled"
                    and image["status"] == "Ready"
                    and not image.get("system")
                    and (image.get("architecture") in (None, arch))
                    and self._vm_zone_backup_storages(vm, image)
                    and image["uuid"] not in attached
                ):
                    out.append(render(image, IMAGE_FIELDS))
            return {"inventories": out}

    def vm_candidates(self, auth: Auth, iso_uuid: str) -> dict[str, Any]:
        """§4.3 GetCandidateVmForAttachingIso (does not exclude VMs that already have the ISO)."""
        with self._lock:
            iso = self._find_image(iso_uuid, "isoUuid")
            self._check_session(auth)
            out = [
                self._vm_inventory(vm)
                for vm in self.vms.values()
                if vm["state"] in ("Running", "Stopped") and self._vm_zone_backup_storages(vm, iso)
            ]
            return {"inventories": out}

    def get_version(self) -> dict[str, Any]:
        """§9 GetVersion (no auth)."""
        return {"version": self.version}

    # ------------------------------------------------------------------ ISO attach / detach (§5, §6)

    def attach_iso(self, job: Job, auth: Auth, vm_uuid: str, iso_uuid: str, system_tags: list[str]) -> None:
        """§5.2. By default as the open-source node (VmInstanceApiInterceptor.java:764-796, VmInstanceBase.java:
        4826-5004 @ 5a29293): no check of the ISO's state or status, and a cdromUuid:: tag may name any VM's
        CD-ROM, which then gets the ISO. `strictAttach` restores the simulator's former, stricter answers."""
        cdrom_tag = find_tag_value(system_tags, "cdromUuid::{cdromUuid}", "cdromUuid")  # VmSystemTags.java:159-160
        strict = self.config.strictAttach

        def intercept() -> tuple[str, None]:
            vm = self._find_vm(vm_uuid, "vmInstanceUuid")  # §5.2 step 1: SYS.1003
            iso = self._find_image(iso_uuid, "isoUuid")  # §5.2 step 1: SYS.1003
            self._check_session(auth)  # §5.2 step 2: ID.1001
            if any(c["isoUuid"] == iso_uuid for c in self._cdroms_of(vm_uuid)):  # §5.2 step 3a: SYS.1006
                raise operr(f"VM[uuid:{vm_uuid}] already has an ISO[uuid:{iso_uuid}] attached")
            if iso["mediaType"] != "ISO":  # §5.2 step 3b: SYS.1007 (trailing space is ZStack's)
                raise argerr(f"Unsupported Image Media Type: [{iso['mediaType']}] ")
            if strict:
                self._strict_check_iso_usable(iso)
            if cdrom_tag is not None:  # §5.2 step 3c (VmInstanceApiInterceptor.java:778-796)
                cd = self.cdroms.get(cdrom_tag)
                if cd is None:
                    raise operr(f"The cdRom[uuid:{cdrom_tag}] does not exist")  # SYS.1006
                if strict and cd["vmInstanceUuid"] != vm_uuid:  # not checked by the open-source node
                    raise operr(
                        f"The cdRom[uuid:{cdrom_tag}] belongs to VM[uuid:{cd['vmInstanceUuid']}], "
                        f"not to VM[uuid:{vm_uuid}]"
                    )
                if cd["isoUuid"]:
                    raise operr(f"VM[uuid:{vm_uuid}] cdRom[uuid:{cdrom_tag}] has mounted the ISO")  # SYS.1006
            del vm
            return vm_uuid, None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            vm = self._find_vm(vm_uuid, "vmInstanceUuid")
            iso = self._find_image(iso_uuid, "isoUuid")
            if vm["state"] not in ISO_OP_STATES:  # §5.2 step 4: SYS.1006 + cause VM.1010
                raise state_error(vm, ISO_OP_STATES, "org.zstack.header.vm.AttachIsoToVmInstanceMsg")
            pairs = self._vm_zone_backup_storages(vm, iso)
            ps = self._vm_primary_storage(vm)
            if not pairs:  # §5.2 step 5 (checkIfIsoAttachable does not look at the refs' status): SYS.1006
                raise operr(
                    f"the ISO[uuid:{iso_uuid}] is on backup storage that is not compatible of the primary "
                    f"storage[uuid:{ps}] where the VM[name:{vm['name']}, uuid:{vm_uuid}] is on"
                )
            cdroms = self._cdroms_of(vm_uuid)
            if any(c["isoUuid"] == iso_uuid for c in cdroms):  # §5.2 step 6 (re-check; races, §10): SYS.1006
                raise operr(f"VM[uuid:{vm_uuid}] has attached ISO[uuid:{iso_uuid}]")
            if not any(c["isoUuid"] is None for c in cdroms):  # §5.2 step 6: SYS.1006, also with zero CD-ROMs
                raise operr(f"All vm[uuid:{vm_uuid}] CD-ROMs have mounted ISO")
            if cdrom_tag is not None:
                cd = self.cdroms.get(cdrom_tag)
                if cd is None:  # deleted meanwhile: the node's dbf.findByUuid would give null (UNCONFIRMED)
                    raise operr(f"The cdRom[uuid:{cdrom_tag}] does not exist")
                if strict and cd["isoUuid"]:  # the node does not re-check it in the queue: a race overwrites
                    raise operr(f"VM[uuid:{vm_uuid}] cdRom[uuid:{cdrom_tag}] has mounted the ISO")
            running = vm["state"] in ("Running", "Paused")
            if running:  # §5.2 step 10: VmDownloadIsoFlow (database only for a Stopped VM)
                self._check_iso_downloadable(vm, iso, pairs, ps)

            def apply() -> dict[str, Any]:
                # §5.2 step 8: the tagged CD-ROM (of whichever VM), else the empty one with the lowest deviceId
                empty = [c for c in self._cdroms_of(vm_uuid) if c["isoUuid"] is None]
                target = self.cdroms.get(cdrom_tag) if cdrom_tag is not None else empty[0] if empty else None
                if target is None:
                    raise operr(f"The cdRom[uuid:{cdrom_tag}] does not exist")
                target["isoUuid"] = iso_uuid
                # §5.2 steps 9-10: a Stopped VM is changed in the database only (no install path)
                target["isoInstallPath"] = self._iso_install_path(iso_uuid) if running else None
                target["lastOpDate"] = vm["lastOpDate"] = time.time()
                return {"inventory": self._vm_inventory(vm)}  # this VM, even when the tag named another VM's

            return apply

        self._submit(job, intercept, queued)

    def _strict_check_iso_usable(self, iso: dict[str, Any]) -> None:
        """strictAttach only: the simulator's former rule (an ISO must be Enabled and Ready), SYS.1006."""
        if iso["state"] != "Enabled" or iso["status"] != "Ready":
            raise operr(
                f"ISO[uuid:{iso['uuid']}, name:{iso['name']}] cannot be attached: it is {iso['state']} and "
                f"{iso['status']}, an ISO must be Enabled and Ready"
            )

    def _check_iso_downloadable(self, vm: dict[str, Any], iso: dict[str, Any], pairs: list, ps: str) -> None:
        """VmDownloadIsoFlow.java:52-77 @ 5a29293: ImageBackupStorageSelector (L56-72) takes the first Connected
        backup storage of the zone whose ref is not Deleted; none is SYS.1006 with the node's text."""
        selected = next(
            (ref for ref, bs in pairs if ref["status"] != "Deleted" and bs.get("status") == "Connected"), None
        )
        if selected is None:
            raise operr(
                f"cannot find the iso[uuid:{iso['uuid']}] in any connected backup storage attached to the "
                f"zone[uuid:{vm['zoneUuid']}]. check below:\n"
                f"1. if the backup storage is attached to the zone where the VM[name: {vm['name']}, uuid:{vm['uuid']}] "
                f"is running\n2. if the backup storage is in connected status, if not, try reconnecting it"
            )
        if selected["status"] != "Ready":
            # The flow then passes no Ready ref to the primary storage's download (L69-77); what a node answers was
            # not traced (UNCONFIRMED): the simulator fails the download with its own wording.
            raise operr(
                f"cannot download the iso[uuid:{iso['uuid']}] to the primary storage[uuid:{ps}]: it is "
                f"{selected['status']} on the backup storage[uuid:{selected['backupStorageUuid']}]"
            )

    @staticmethod
    def _iso_install_path(iso_uuid: str) -> str:
        return f"/zstack_ps/imagecache/iso/{iso_uuid}/{iso_uuid}.iso"

    def detach_iso(self, job: Job, auth: Auth, vm_uuid: str, iso_uuid: str | None) -> None:
        def intercept() -> tuple[str, str | None]:
            self._find_vm(vm_uuid, "vmInstanceUuid")  # §6.2 step 1: SYS.1003
            self._check_session(auth)  # §6.2 step 1: ID.1001
            target = iso_uuid
            if target is None:  # §6.2 step 2
                attached = [c["isoUuid"] for c in self._cdroms_of(vm_uuid) if c["isoUuid"]]
                if len(attached) > 1:  # SYS.1006
                    raise operr(f"VM[uuid:{vm_uuid}] has multiple ISOs attached, specify the isoUuid when detaching")
                target = attached[0] if attached else None
            return vm_uuid, target

        def queued(target: str | None) -> Callable[[], dict[str, Any]]:
            vm = self._find_vm(vm_uuid, "vmInstanceUuid")
            if vm["state"] not in ISO_OP_STATES:  # §6.2 step 3: SYS.1006 + cause VM.1010, before the no-op check
                raise state_error(vm, ISO_OP_STATES, "org.zstack.header.vm.APIDetachIsoFromVmInstanceMsg")

            def apply() -> dict[str, Any]:
                # §6.2 step 4: an ISO that is not attached (or none at all) is a successful no-op
                for cd in self._cdroms_of(vm_uuid):
                    if target is not None and cd["isoUuid"] == target:
                        # VmInstanceBase.java:4585-4592,4614-4621 @ 5a29293: isoUuid and isoInstallPath are
                        # cleared, protocol is kept; the CD-ROM row stays
                        cd["isoUuid"] = cd["isoInstallPath"] = None
                        cd["lastOpDate"] = vm["lastOpDate"] = time.time()
                return {"inventory": self._vm_inventory(vm)}

            return apply

        self._submit(job, intercept, queued)

    # ------------------------------------------------------------------ CD-ROM APIs (§7.2)

    def _check_attachable_iso(self, vm_uuid: str, iso: dict[str, Any]) -> None:
        if any(c["isoUuid"] == iso["uuid"] for c in self._cdroms_of(vm_uuid)):
            raise operr(f"VM[uuid:{vm_uuid}] already has an ISO[uuid:{iso['uuid']}] attached")
        if iso["mediaType"] != "ISO":
            raise argerr(f"Unsupported Image Media Type: [{iso['mediaType']}] ")
        if self.config.strictAttach:  # doCreateVmCdRom checks neither state nor status (VmInstanceBase.java:8349)
            self._strict_check_iso_usable(iso)

    def create_cdrom(
        self,
        job: Job,
        auth: Auth,
        vm_uuid: str | None,
        name: str | None,
        iso_uuid: str | None = None,
        description: str | None = None,
        resource_uuid: str | None = None,
    ) -> None:
        def intercept() -> tuple[str, None]:
            self._require(vm_uuid, "vmInstanceUuid")
            self._require(name, "name")
            vm = self._find_vm(vm_uuid, "vmInstanceUuid")  # SYS.1003
            iso = self._find_image(iso_uuid, "isoUuid") if iso_uuid else None
            if resource_uuid is not None and (not UUID_RE.match(resource_uuid) or resource_uuid in self.cdroms):
                raise argerr(f"invalid resourceUuid[{resource_uuid}]: not a UUID or already used")
            self._check_session(auth)
            if vm["state"] != "Stopped":  # §7.2: SYS.1007 (trailing space is ZStack's)
                raise argerr(f"Can not create CD-ROM for vm[uuid:{vm_uuid}] which is in state[{vm['state']}] ")
            if len(self._cdroms_of(vm_uuid)) >= MAX_CDROMS:  # §7.1 vm.maximumCdRomNum: SYS.1006
                raise operr(f"VM[uuid:{vm_uuid}] can only add {MAX_CDROMS} CDROMs")
            if iso is not None:  # §7.2: SYS.1006 for an ISO already on the VM
                self._check_attachable_iso(vm_uuid, iso)
            return vm_uuid, None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            vm = self._find_vm(vm_uuid, "vmInstanceUuid")
            if vm["state"] != "Stopped":  # §7.2: the internal message is allowed only in Stopped
                raise state_error(vm, ("Stopped",), "org.zstack.header.vm.cdrom.CreateVmCdRomMsg")
            if len(self._cdroms_of(vm_uuid)) >= MAX_CDROMS:
                raise operr(f"VM[uuid:{vm_uuid}] can only add {MAX_CDROMS} CDROMs")
            if iso_uuid:
                self._check_attachable_iso(vm_uuid, self._find_image(iso_uuid, "isoUuid"))
            if resource_uuid is not None and resource_uuid in self.cdroms:
                raise argerr(f"invalid resourceUuid[{resource_uuid}]: not a UUID or already used")

            def apply() -> dict[str, Any]:
                used = {c["deviceId"] for c in self._cdroms_of(vm_uuid)}
                now = time.time()
                cd = {
                    "uuid": resource_uuid or uuid.uuid4().hex,
                    "vmInstanceUuid": vm_uuid,
                    "deviceId": min(set(range(MAX_CDROMS + 1)) - used),  # §7.2: lowest free deviceId
                    "isoUuid": iso_uuid or None,
                    "isoInstallPath": None,  # the VM is Stopped: database only
                    "name": name,
                    "description": description,
                    "protocol": None,
                    "createDate": now,
                    "lastOpDate": now,
                }
                self.cdroms[cd["uuid"]] = cd
                return {"inventory": render(cd, CDROM_FIELDS)}

            return apply

        self._submit(job, intercept, queued)

    def delete_cdrom(self, job: Job, auth: Auth, cdrom_uuid: str) -> None:
        """§7.2 DeleteVmCdRom; a CD-ROM holding an ISO may be deleted too, the others keep their deviceIds
        (VmInstanceBase.java:8296-8347 @ 5a29293: no ISO check, no renumbering)."""
        cdrom_uuid = java_trim(cdrom_uuid)  # APIMessage.java:204-226: String fields are trimmed before validation

        def intercept() -> tuple[str, None]:
            cd = self.cdroms.get(cdrom_uuid)
            if cd is None:  # successIfResourceNotExisting: SYS.1003 or success, before the session check
                success_if_not_existing(cdrom_uuid)
            self._check_session(auth)  # ID.1001
            return cd["vmInstanceUuid"], None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            cd = self.cdroms.get(cdrom_uuid)
            if cd is not None:
                vm = self.vms.get(cd["vmInstanceUuid"])
                # VmInstanceBase.java:8296-8336 / AbstractVmInstance.java:109: the state check is on the internal
                # message the API handler sends: SYS.1006 + cause VM.1010 naming DeleteVmCdRomMsg
                if vm is not None and vm["state"] != "Stopped":
                    raise state_error(vm, ("Stopped",), "org.zstack.header.vm.cdrom.DeleteVmCdRomMsg")

            def apply() -> dict[str, Any]:
                self.cdroms.pop(cdrom_uuid, None)
                return {}  # §7.2: APIDeleteVmCdRomEvent has no mapping

            return apply

        self._submit(job, intercept, queued)

    def update_cdrom(self, job: Job, auth: Auth, cdrom_uuid: str, name: str | None, description: str | None) -> None:
        def intercept() -> tuple[str, None]:
            cd = self.cdroms.get(cdrom_uuid)
            if cd is None:
                raise not_found("uuid", cdrom_uuid, "VmCdRomVO")
            self._check_session(auth)
            return cd["vmInstanceUuid"], None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            if cdrom_uuid not in self.cdroms:
                raise not_found("uuid", cdrom_uuid, "VmCdRomVO")

            def apply() -> dict[str, Any]:
                cd = self.cdroms[cdrom_uuid]
                if name is not None:
                    cd["name"] = name
                if description is not None:
                    cd["description"] = description
                cd["lastOpDate"] = time.time()
                return {"inventory": render(cd, CDROM_FIELDS)}

            return apply

        self._submit(job, intercept, queued)

    def set_default_cdrom(self, job: Job, auth: Auth, vm_uuid: str, cdrom_uuid: str) -> None:
        def intercept() -> tuple[str, None]:
            self._find_vm(vm_uuid, "vmInstanceUuid")
            cd = self.cdroms.get(cdrom_uuid)
            if cd is None:
                raise not_found("uuid", cdrom_uuid, "VmCdRomVO")
            self._check_session(auth)
            if cd["vmInstanceUuid"] != vm_uuid:  # not settled by the spec: refuse a CD-ROM of another VM
                raise argerr(f"The CdRom[{cdrom_uuid}] does not belong to the vm[uuid:{vm_uuid}]")
            if cd["deviceId"] == 0:  # §7.2: SYS.1007
                raise argerr(f"The CdRom[{cdrom_uuid}] Already the default")
            return vm_uuid, None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            vm = self._find_vm(vm_uuid, "vmInstanceUuid")
            if cdrom_uuid not in self.cdroms:
                raise not_found("uuid", cdrom_uuid, "VmCdRomVO")
            if vm["state"] not in ISO_OP_STATES:
                raise state_error(vm, ISO_OP_STATES, "org.zstack.header.vm.cdrom.APISetVmInstanceDefaultCdRomMsg")

            def apply() -> dict[str, Any]:
                # §7.2: the target takes deviceId 0, the old default takes the target's old deviceId
                target = self.cdroms[cdrom_uuid]
                old_id = target["deviceId"]
                now = time.time()
                for cd in self._cdroms_of(vm_uuid):
                    if cd["deviceId"] == 0:
                        cd["deviceId"], cd["lastOpDate"] = old_id, now
                target["deviceId"], target["lastOpDate"] = 0, now
                return {"inventory": render(target, CDROM_FIELDS)}

            return apply

        self._submit(job, intercept, queued)

    # ------------------------------------------------------------------ image APIs (§14; [Z] image/ImageBase.java)

    def _check_backup_storage_uuids(self, bs_uuids: list[str] | None) -> None:
        """@APIParam(required=false, nonempty=true, resourceType=BackupStorageVO) on a list (ApiMessageParamValidator
        .java:63-68, PortApiValidator.java:40-66 @ 5a29293)."""
        if bs_uuids is None:
            return
        if not bs_uuids:
            raise argerr("field[backupStorageUuids] must be a nonempty list")
        missing = [u for u in bs_uuids if u not in self.backup_storages]
        if missing:
            raise ApiError(
                "SYS.1003",
                f"invalid field[backupStorageUuids], resource[uuids:[{', '.join(missing)}], type:BackupStorageVO] "
                f"not found",
            )

    def _image_inventory(self, image: dict[str, Any]) -> dict[str, Any]:
        return render(image, IMAGE_FIELDS)

    def delete_image(self, job: Job, auth: Auth, image_uuid: str, bs_uuids: list[str] | None = None) -> None:
        """DeleteImage (APIDeleteImageMsg.java:15-25; ImageBase.java:957-1031 and ImageDeletionMsg L364-549 @
        5a29293), with the default deletion policy Delay (conf/globalConfig/image.xml:4-15).

        The image is first detached from every VM holding it, whatever the VM's state and outside its queue (the
        internal DetachIsoFromVmInstanceMsg, VmInstanceBase.java:4507-4522): isoUuid and isoInstallPath are
        cleared, protocol kept. Then its refs (those on `bs_uuids`, else all) and, once no ref is left that is not
        Deleted, the image read back with status Deleted; its state is unchanged. An image without refs, or whose
        refs are all Creating/Downloading, is removed at once and never detached (L367-391)."""
        image_uuid = java_trim(image_uuid)  # APIMessage.java:204-226

        def intercept() -> tuple[str, None]:
            if image_uuid not in self.images:  # successIfResourceNotExisting (APIDeleteImageMsg.java:22)
                success_if_not_existing(image_uuid)
            self._check_backup_storage_uuids(bs_uuids)
            self._check_session(auth)
            return f"image:{image_uuid}", None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            def apply() -> dict[str, Any]:
                image = self.images.get(image_uuid)
                if image is None:
                    return {}  # deleted meanwhile
                refs = image.get("backupStorageRefs", [])
                now = time.time()
                if not refs or all(r["status"] in ("Creating", "Downloading") for r in refs):
                    del self.images[image_uuid]
                    if refs or image["status"] != "Ready":
                        # a hard delete: the CD-ROM's isoUuid foreign key is ON DELETE SET NULL (VmCdRomVO.java:27-37)
                        for cd in self.cdroms.values():
                            if cd["isoUuid"] == image_uuid:
                                cd["isoUuid"], cd["lastOpDate"] = None, now
                    return {}
                for cd in self.cdroms.values():  # IsoOperator.getVmUuidByIsoUuid: any VM, any state
                    if cd["isoUuid"] == image_uuid:
                        cd["isoUuid"] = cd["isoInstallPath"] = None
                        cd["lastOpDate"] = now
                for ref in refs:  # Delay: the ref stays, Deleted (ImageBase.java:493)
                    if bs_uuids is None or ref["backupStorageUuid"] in bs_uuids:
                        ref["status"], ref["lastOpDate"] = "Deleted", now
                if all(r["status"] == "Deleted" for r in refs):  # ImageBase.java:525-531
                    image["status"], image["lastOpDate"] = "Deleted", now
                return {}  # APIDeleteImageEvent has no mapping

            return apply

        self._submit(job, intercept, queued)

    def _deleted_refs(self, image: dict[str, Any], bs_uuids: list[str] | None, verb: str) -> list[dict[str, Any]]:
        """The refs Recover/Expunge work on (ImageBase.java:745-782 and 803-846 @ 5a29293)."""
        refs = image.get("backupStorageRefs", [])
        who = f"the image[uuid:{image['uuid']}, name:{image['name']}]"
        if not bs_uuids:
            chosen = [r for r in refs if r["status"] == "Deleted"]
            if not chosen:
                raise operr(f"{who} is not deleted on any backup storage")  # SYS.1006
            return chosen
        chosen = []
        for bs_uuid in bs_uuids:  # SYS.1007
            ref = next((r for r in refs if r["backupStorageUuid"] == bs_uuid), None)
            if ref is None:
                raise argerr(f"{who} is not on the backup storage[uuid:{bs_uuid}]")
            if ref["status"] != "Deleted":
                if verb == "recover":
                    raise argerr(
                        f"{who}'s status[{ref['status']}] is not Deleted on the backup storage[uuid:{bs_uuid}]"
                    )
                raise argerr(f"{who} is not deleted on the backup storage[uuid:{bs_uuid}]")
            chosen.append(ref)
        return chosen

    def expunge_image(self, job: Job, auth: Auth, image_uuid: str, bs_uuids: list[str] | None = None) -> None:
        """ExpungeImage (APIExpungeImageMsg.java:17-31; ImageBase.java:803-868 and ExpungeImageMsg L285-347 @
        5a29293): the Deleted refs are removed; with no ref left the image is gone from queries. CD-ROMs are not
        touched (the ImageVO is soft-deleted)."""
        image_uuid = java_trim(image_uuid)

        def intercept() -> tuple[str, None]:
            self._find_image(image_uuid, "imageUuid")  # SYS.1003
            self._check_backup_storage_uuids(bs_uuids)
            self._check_session(auth)
            return f"image:{image_uuid}", None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            image = self._find_image(image_uuid, "imageUuid")
            chosen = self._deleted_refs(image, bs_uuids, "expunge")

            def apply() -> dict[str, Any]:
                image["backupStorageRefs"] = [r for r in image["backupStorageRefs"] if r not in chosen]
                if not image["backupStorageRefs"]:
                    self.images.pop(image_uuid, None)
                return {}  # APIExpungeImageEvent has no mapping

            return apply

        self._submit(job, intercept, queued)

    def recover_image(self, job: Job, auth: Auth, image_uuid: str, bs_uuids: list[str] | None = None) -> None:
        """RecoverImage (APIRecoverImageMsg.java:16-26; ImageBase.java:745-801 @ 5a29293): the Deleted refs (or those
        named) and the image become Ready; state unchanged; the ISO is attached nowhere again."""
        image_uuid = java_trim(image_uuid)

        def intercept() -> tuple[str, None]:
            self._find_image(image_uuid, "imageUuid")  # SYS.1003
            self._check_session(auth)
            return f"image:{image_uuid}", None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            image = self._find_image(image_uuid, "imageUuid")
            chosen = self._deleted_refs(image, bs_uuids, "recover")

            def apply() -> dict[str, Any]:
                now = time.time()
                for ref in chosen:
                    ref["status"], ref["lastOpDate"] = "Ready", now
                image["status"], image["lastOpDate"] = "Ready", now
                return {"inventory": self._image_inventory(image)}

            return apply

        self._submit(job, intercept, queued)

    def change_image_state(self, job: Job, auth: Auth, image_uuid: str, state_event: str | None) -> None:
        """ChangeImageState (APIChangeImageStateMsg.java:16-27; ImageBase.java:943-955 @ 5a29293): only `state`
        changes; CD-ROMs that hold the image keep it; a Deleted image may change too."""
        image_uuid = java_trim(image_uuid)
        if isinstance(state_event, str):
            state_event = java_trim(state_event)

        def intercept() -> tuple[str, None]:
            self._find_image(image_uuid, "uuid")  # SYS.1003
            self._require(state_event, "stateEvent")  # SYS.1007
            if state_event not in ("enable", "disable"):  # validValues, case-sensitive: SYS.1007
                raise invalid_value("stateEvent", ("enable", "disable"), state_event)
            self._check_session(auth)
            return f"image:{image_uuid}", None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            image = self._find_image(image_uuid, "uuid")

            def apply() -> dict[str, Any]:
                image["state"] = "Disabled" if state_event == "disable" else "Enabled"
                image["lastOpDate"] = time.time()
                return {"inventory": self._image_inventory(image)}

            return apply

        self._submit(job, intercept, queued)

    # ------------------------------------------------------------------ VM lifecycle (§13)

    def change_vm_state(self, job: Job, auth: Auth, action: str, vm_uuid: str, *, stop_type: str | None = None) -> None:
        """start, stop, reboot, destroy, recover or expunge; transitional states last for the job's duration."""
        rule = LIFECYCLE[action]
        vm_uuid = java_trim(vm_uuid)  # APIMessage.java:204-226 @ 5a29293: String fields are trimmed first

        def intercept() -> tuple[str, None]:
            if action == "destroy" and vm_uuid not in self.vms:
                # APIDestroyVmInstanceMsg.java:48 @ 5a29293: successIfResourceNotExisting (SYS.1003 or success)
                success_if_not_existing(vm_uuid)
            self._find_vm(vm_uuid, "uuid")  # SYS.1003
            if action == "stop" and stop_type is not None and stop_type not in ("grace", "cold"):
                # §13: @APIParam(validValues) is checked by the parameter validator: SYS.1007
                raise invalid_value("type", ("grace", "cold"), stop_type)
            self._check_session(auth)
            return vm_uuid, None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            vm = self._find_vm(vm_uuid, "uuid")
            if vm["state"] not in rule.allowed:  # SYS.1006 + cause VM.1010
                raise state_error(vm, rule.allowed, rule.message)
            noop = vm["state"] in rule.noop
            if not noop and rule.transitional:
                vm.setdefault("_settledState", vm["state"])
                vm["state"] = rule.transitional

            def apply() -> dict[str, Any]:
                now = time.time()
                if not noop:
                    vm.pop("_settledState", None)
                    if rule.final is None:  # expunge: the VM and its CD-ROMs are gone
                        del self.vms[vm_uuid]
                        for cd in self._cdroms_of(vm_uuid):
                            del self.cdroms[cd["uuid"]]
                        return {}
                    vm["state"] = rule.final
                    vm["lastOpDate"] = now
                    if rule.final == "Running":
                        vm["hostUuid"] = vm.get("lastHostUuid")
                        for cd in self._cdroms_of(vm_uuid):  # the ISO is downloaded to the host on start
                            if cd["isoUuid"] and not cd["isoInstallPath"]:
                                cd["isoInstallPath"] = self._iso_install_path(cd["isoUuid"])
                    else:
                        if vm.get("hostUuid"):
                            vm["lastHostUuid"] = vm["hostUuid"]
                        vm["hostUuid"] = None
                return {"inventory": self._vm_inventory(vm)} if rule.returns_inventory else {}

            return apply

        self._submit(job, intercept, queued)

    def update_vm(
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

        def intercept() -> tuple[str, None]:
            self._find_vm(vm_uuid, "uuid")  # SYS.1003
            for field_name, value, limit in (("name", name, 255), ("description", description, 2048)):
                if value is not None and len(value) > limit:  # ApiMessageParamValidator.java:29-35: SYS.1007
                    raise argerr(
                        f"field[{field_name}] of message[{PARAM_VALIDATOR}] exceeds max length of string. "
                        f"expected was <= {limit}, actual was {len(value)}"
                    )
            self._check_session(auth)
            return vm_uuid, None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            vm = self._find_vm(vm_uuid, "uuid")

            def apply() -> dict[str, Any]:
                if name is not None or description is not None:
                    if name is not None:
                        vm["name"] = name
                    if description is not None:
                        vm["description"] = description
                    vm["lastOpDate"] = time.time()
                if iso_uuid is not None:
                    self._move_iso_first(vm, iso_uuid)
                return {"inventory": self._vm_inventory(vm)}

            return apply

        self._submit(job, intercept, queued)

    def _move_iso_first(self, vm: dict[str, Any], iso_uuid: str) -> None:
        """VmInstanceBase.updateVmIsoFirstOrder (L5652-5706 @ 5a29293), bugs included (see update_vm)."""
        cdroms = self._cdroms_of(vm["uuid"])  # ordered by deviceId ASC, as the node's query
        if iso_uuid not in [c["isoUuid"] for c in cdroms if c["isoUuid"]]:
            raise operr(f"ISO[uuid:{iso_uuid}] is not attached to VM[uuid:{vm['uuid']}]")  # L5666
        if len(cdroms) <= 1 or cdroms[0]["isoUuid"] == iso_uuid:
            return
        source = None
        for cd in cdroms:  # stream().filter(v -> v.getIsoUuid().equals(isoUuid)).findAny()
            if cd["isoUuid"] is None:
                raise ApiError("SYS.1000", None)  # NullPointerException: inerr(null), no details
            if cd["isoUuid"] == iso_uuid:
                source = cd
                break
        assert source is not None
        target = cdroms[0]
        target_iso, target_protocol = target["isoUuid"], target["protocol"]
        target["isoUuid"], target["isoInstallPath"] = source["isoUuid"], source["isoInstallPath"]
        target["protocol"] = source["protocol"]
        source["isoUuid"] = target_iso
        source["isoInstallPath"] = target_protocol  # setIsoInstallPath(path) then setIsoInstallPath(protocol)
        now = time.time()
        target["lastOpDate"] = source["lastOpDate"] = now

    def renew_session(self, job: Job, auth: Auth, session_uuid: str, duration: int | None) -> None:
        """§1.3 RenewSession (async, auth required)."""

        def intercept() -> tuple[str, None]:
            # the parameter validator (SYSTEM) runs before the session check (FRONT), §1.5
            if duration is not None and not 60 <= duration <= 31536000:
                # ApiMessageParamValidator.java:92-107 @ 5a29293 (numberRange): SYS.1007
                raise argerr("field[duration] must be in range of [60, 31536000]")
            if session_uuid not in self.sessions:
                raise not_found("sessionUuid", session_uuid, "SessionVO")
            self._check_session(auth)
            return f"session:{session_uuid}", None

        def queued(_: None) -> Callable[[], dict[str, Any]]:
            def apply() -> dict[str, Any]:
                s = self.sessions.get(session_uuid)
                if s is None:
                    raise not_found("sessionUuid", session_uuid, "SessionVO")
                s["expiredDate"] = time.time() + (duration or self.config.sessionTimeoutSeconds)
                return {"inventory": render(s, SESSION_FIELDS)}

            return apply

        self._submit(job, intercept, queued)

    # ------------------------------------------------------------------ control (not ZStack's API)

    def reset(self) -> None:
        """Back to the seed inventory and the start-up config; sessions and jobs are dropped."""
        with self._lock:
            self.generation += 1
            self._load_inventory(self._seed)
            self.sessions = {}
            self.jobs = {}
            self._queues = {}
            self.config = SimConfig(**asdict(self._initial_config))
            self._persist()

    def get_config(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self.config)

    def update_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change any subset of jobSeconds, latencyMs, sessionTimeoutSeconds, strictAttach; ValueError on a bad
        value."""
        types = {"jobSeconds": float, "latencyMs": float, "sessionTimeoutSeconds": int, "strictAttach": bool}
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in types:
                raise ValueError(f"unknown config key {key!r}; known: {sorted(types)}")
            if types[key] is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                clean[key] = value
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a non-negative number")
            if types[key] is int and value != int(value):
                raise ValueError(f"{key} must be an integer")
            clean[key] = types[key](value)
        with self._lock:
            for key, value in clean.items():
                setattr(self.config, key, value)
            return asdict(self.config)

    def expire_sessions(self) -> int:
        with self._lock:
            past = time.time() - 1
            for s in self.sessions.values():
                s["expiredDate"] = min(s["expiredDate"], past)
            count = len(self.sessions)
            self._persist()
        return count

    def hold_vm_state(self, vm_uuid: str, state: str, seconds: float) -> dict[str, Any]:
        """Put a VM in `state` for `seconds`, then back to its former state (if nothing changed it meanwhile)."""
        if state not in VM_STATES:
            raise ValueError(f"state must be one of {sorted(VM_STATES)}")
        with self._lock:
            vm = self.vms.get(vm_uuid)
            if vm is None:
                raise KeyError(vm_uuid)
            former = vm["state"]
            vm.setdefault("_settledState", former)
            vm["state"] = state
            generation = self.generation

        def restore() -> None:
            with self._lock:
                current = self.vms.get(vm_uuid)
                if generation != self.generation or current is not vm or vm["state"] != state:
                    return
                vm["state"] = former
                if vm.get("_settledState") == former:
                    vm.pop("_settledState", None)

        self._later(seconds, restore)
        return {"uuid": vm_uuid, "state": state, "formerState": former, "seconds": seconds}

    def inventory(self) -> dict[str, Any]:
        """Everything a test helper needs to look things up by name, rendered as on the wire."""
        with self._lock:
            return {
                "vmInstances": [self._vm_inventory(vm) for vm in self.vms.values()],
                "vmCdRoms": [render(c, CDROM_FIELDS) for c in self.cdroms.values()],
                "images": [render(i, IMAGE_FIELDS) for i in self.images.values()],
                "accounts": [{"uuid": a["uuid"], "name": a["name"]} for a in self.accounts.values()],
                "accessKeys": [
                    {"id": k["id"], "secret": k["secret"], "accountUuid": k["accountUuid"]}
                    for k in self._access_keys.values()
                ],
                "version": self.version,
            }
