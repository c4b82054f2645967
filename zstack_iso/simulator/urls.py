"""The routing tables (like moto's urls.py): which path and method reach which handler, as data.

ROUTES is RestServer's table for the ZStack paths this simulator serves (relative to /zstack): each path with
the APIs declared on it; `handler` names the ZStackResponses method (`_api_<handler>`, or `_api_<kind>` with
the argument after the colon). CONTROL_ROUTES is the simulator's own control API under /_simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote


@dataclass(frozen=True)
class Api:
    """One ZStack API as RestServer knows it: its annotation's method, body key, and handler."""

    name: str
    method: str
    handler: str
    action: str | None = None  # isAction APIs: the PUT body key
    param_name: str | None = None  # other POST/PUT APIs: the body key holding the parameters
    auth: bool = True
    is_async: bool = True
    ints: tuple[str, ...] = ()  # fields checked by TypeVerifier (§3.2)
    bools: tuple[str, ...] = ()
    strings: tuple[str, ...] = ()
    result: str | None = None  # the inventory kind of its "inventory"/"inventories", for the schema (§14)


def _query_api(name: str, kind: str) -> Api:
    # no TypeVerifier fields: handleQueryApi parses its own parameters (RestServer.java:1099-1190 @ 5a29293)
    return Api(name, "GET", "query:" + kind, is_async=False, result=kind)


def _unsupported(name: str, method: str, action: str | None = None) -> Api:
    return Api(name, method, "unsupported", action=action, is_async=False)


# RestServer's table, for the paths this simulator serves (relative to /zstack).
ROUTES: list[tuple[str, list[Api]]] = [
    ("/v1/accounts/login", [Api("LogInByAccount", "PUT", "login_account", action="logInByAccount", auth=False,
                                is_async=False, strings=("accountName", "password"), result="session")]),
    ("/v1/accounts/users/login", [Api("LogInByUser", "PUT", "login_user", action="logInByUser", auth=False,
                                      is_async=False, strings=("accountName", "accountUuid", "userName",
                                                               "password"), result="session")]),
    ("/v1/accounts/sessions/{sessionUuid}", [Api("LogOut", "DELETE", "logout", auth=False, is_async=False)]),
    ("/v1/accounts/sessions/{sessionUuid}/valid", [Api("ValidateSession", "GET", "validate_session", auth=False,
                                                       is_async=False)]),
    ("/v1/accounts/sessions/{sessionUuid}/renew", [Api("RenewSession", "PUT", "renew_session",
                                                       action="renewSession", ints=("duration",), result="session")]),
    ("/v1/management-nodes/actions", [
        Api("GetVersion", "PUT", "get_version", action="getVersion", auth=False, is_async=False),
        Api("GetCurrentTime", "PUT", "get_current_time", action="getCurrentTime", auth=False, is_async=False),
    ]),
    ("/v1/vm-instances", [_query_api("QueryVmInstance", "vmInstance"), _unsupported("CreateVmInstance", "POST")]),
    ("/v1/vm-instances/{uuid}", [
        _query_api("QueryVmInstance", "vmInstance"),
        Api("DestroyVmInstance", "DELETE", "vm:destroy"),
    ]),
    ("/v1/vm-instances/{uuid}/actions", [
        Api("StartVmInstance", "PUT", "vm:start", action="startVmInstance", result="vmInstance"),
        Api("StopVmInstance", "PUT", "vm:stop", action="stopVmInstance", strings=("type",), result="vmInstance"),
        Api("RebootVmInstance", "PUT", "vm:reboot", action="rebootVmInstance", result="vmInstance"),
        Api("RecoverVmInstance", "PUT", "vm:recover", action="recoverVmInstance", result="vmInstance"),
        Api("ExpungeVmInstance", "PUT", "vm:expunge", action="expungeVmInstance"),
        Api("UpdateVmInstance", "PUT", "update_vm", action="updateVmInstance", result="vmInstance",
            strings=("name", "description", "state", "defaultL3NetworkUuid", "platform", "guestOsType"),
            ints=("cpuNum", "memorySize", "reservedMemorySize")),
    ]),
    ("/v1/vm-instances/cdroms", [
        _query_api("QueryVmCdRom", "vmCdRom"),
        Api("CreateVmCdRom", "POST", "create_cdrom", param_name="params",
            strings=("name", "vmInstanceUuid", "isoUuid", "description", "resourceUuid"), result="vmCdRom"),
    ]),
    ("/v1/vm-instances/cdroms/{uuid}", [
        _query_api("QueryVmCdRom", "vmCdRom"),
        Api("DeleteVmCdRom", "DELETE", "delete_cdrom"),
    ]),
    ("/v1/vm-instances/cdroms/{uuid}/actions", [Api("UpdateVmCdRom", "PUT", "update_cdrom",
                                                    action="updateVmCdRom", strings=("name", "description"),
                                                    result="vmCdRom")]),
    ("/v1/vm-instances/{vmInstanceUuid}/cdroms/{uuid}/actions", [
        Api("SetVmInstanceDefaultCdRom", "PUT", "set_default_cdrom", action="setVmInstanceDefaultCdRom",
            result="vmCdRom"),
    ]),
    ("/v1/vm-instances/{vmInstanceUuid}/iso/{isoUuid}", [Api("AttachIsoToVmInstance", "POST", "attach_iso",
                                                             param_name="null", result="vmInstance")]),
    ("/v1/vm-instances/{vmInstanceUuid}/iso", [Api("DetachIsoFromVmInstance", "DELETE", "detach_iso",
                                                   strings=("isoUuid",), result="vmInstance")]),
    ("/v1/vm-instances/{vmInstanceUuid}/iso-candidates", [Api("GetCandidateIsoForAttachingVm", "GET",
                                                              "iso_candidates", is_async=False, result="image")]),
    ("/v1/images", [_query_api("QueryImage", "image"), _unsupported("AddImage", "POST")]),
    ("/v1/images/{uuid}", [_query_api("QueryImage", "image"), Api("DeleteImage", "DELETE", "delete_image")]),
    # ExpungeImage and RecoverImage declare /images/{imageUuid}/actions, ChangeImageState /images/{uuid}/actions:
    # RestServer normalizes both to one path and picks the API by the action key (RestServer.java:1329-1404)
    ("/v1/images/{uuid}/actions", [
        Api("ExpungeImage", "PUT", "expunge_image", action="expungeImage"),
        Api("RecoverImage", "PUT", "recover_image", action="recoverImage", result="image"),
        Api("ChangeImageState", "PUT", "change_image_state", action="changeImageState", strings=("stateEvent",),
            result="image"),
        _unsupported("UpdateImage", "PUT", action="updateImage"),
    ]),
    ("/v1/images/iso/{isoUuid}/vm-candidates", [Api("GetCandidateVmForAttachingIso", "GET", "vm_candidates",
                                                    is_async=False, result="vmInstance")]),
]  # fmt: skip


API_BY_NAME = {api.name: api for _, apis in ROUTES for api in apis}

# The control API (not ZStack's; no auth): (method, path under /_simulator, ControlApi handler `_<name>`).
CONTROL_ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/journal", "get_journal"),
    ("DELETE", "/journal", "clear_journal"),
    ("GET", "/config", "get_config"),
    ("PUT", "/config", "put_config"),
    ("POST", "/faults", "add_fault"),
    ("GET", "/faults", "list_faults"),
    ("DELETE", "/faults", "clear_faults"),
    ("DELETE", "/faults/{id}", "remove_fault"),
    ("POST", "/sessions/expire", "expire_sessions"),
    ("PUT", "/vm-instances/{uuid}/state", "hold_vm_state"),
    ("POST", "/reset", "reset"),
    ("GET", "/inventory", "inventory"),
]


def _compile_routes() -> list[tuple[tuple[str, ...], list[Api]]]:
    compiled = [(tuple(p.strip("/").split("/")), apis) for p, apis in ROUTES]
    # §4.1: literal paths win over variables (/vm-instances/cdroms is not /vm-instances/{uuid})
    compiled.sort(key=lambda r: sum(seg.startswith("{") for seg in r[0]))
    return compiled


_ROUTES = _compile_routes()


def match_route(path: str) -> tuple[list[Api], dict[str, str]] | None:
    segments = path.strip("/").split("/") if path != "/" else []
    if path.endswith("/") and path != "/":
        return None
    for pattern, apis in _ROUTES:
        if len(pattern) != len(segments):
            continue
        variables: dict[str, str] = {}
        for pat, seg in zip(pattern, segments, strict=True):
            if pat.startswith("{"):
                if not seg:
                    break
                variables[pat[1:-1]] = unquote(seg)
            elif pat != seg:
                break
        else:
            return apis, variables
    return None


def match_control_route(method: str, parts: list[str]) -> tuple[str, dict[str, str]] | None:
    """The handler and URL variables for a control API call (`parts`: the unquoted segments after /_simulator)."""
    for route_method, pattern, handler in CONTROL_ROUTES:
        segments = pattern.strip("/").split("/")
        if route_method != method or len(segments) != len(parts):
            continue
        variables = {}
        for pat, seg in zip(segments, parts, strict=True):
            if pat.startswith("{"):
                variables[pat[1:-1]] = seg
            elif pat != seg:
                break
        else:
            return handler, variables
    return None
