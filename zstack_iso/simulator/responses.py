"""Wire layer of the ZStack API (like moto's responses.py): route, parse, call one model method, render.

It follows RestServer's request handling (§3.2, §3.7): path routing with literal paths first, unique paths that
ignore the HTTP method, shared paths resolved by method or by the action key of a PUT body, URL variables over
body and query values, and the plain-text answers for everything that fails before a ZStack message exists.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from .errors import ApiError, DuplicateJobError
from .faults import Fault
from .java import java_parse_int, java_trim, split_by_whole_separator
from .jobs import Job
from .models import ZStackNode
from .queries import QUERY_OP_NAMES, QUERY_OPS, Condition, QuerySpec
from .records import INVENTORY_CLASSES
from .sessions import Auth

API_PREFIX = "/zstack"  # the web app's context path (§0 URL base)
JOB_PATH_PREFIX = "/v1/api-jobs/"
REQUEST_DURATION_MINUTES = 15  # §2 RestServer.checkTime
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


class WireError(Exception):
    """A RestServer answer with a plain-text body (§3.7): 400, 403, 404, 405, 500."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass
class Request:
    method: str
    path: str  # URL path, no query string
    query: str  # raw query string
    headers: Any  # case-insensitive mapping (email.message.Message)
    body: bytes
    base_url: str  # scheme://host[:port] the client used (Host header), for the job location (§3.3)


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | str | None
    job: Job | None = None
    login: bool = False


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


def json_schema(body: dict[str, Any], kind: str | None) -> dict[str, str]:
    """JsonSchemaBuilder.build (JsonSchemaBuilder.java:33-155 @ 5a29293) over a rendered reply: the path of every
    ZStack object to its Java class. Objects are recorded after their children (post-order, fields in declared
    order, list elements in order) and the map is the reverse of that order, so a parent precedes its children.
    Empty lists and absent (null) fields give no entry; JRE values (total, valid, version...) are skipped."""
    if kind is None:
        return {}
    post_order: list[tuple[str, str]] = []

    def visit(obj: dict[str, Any], obj_kind: str, path: str) -> None:
        java_class, nested = INVENTORY_CLASSES[obj_kind]
        for name, child_kind in nested.items():
            for i, child in enumerate(obj.get(name) or []):
                visit(child, child_kind, f"{path}.{name}[{i}]")
        post_order.append((path, java_class))

    for key, value in body.items():
        if key == "inventories" and isinstance(value, list):
            for i, item in enumerate(value):
                visit(item, kind, f"inventories[{i}]")
        elif key == "inventory" and isinstance(value, dict):
            visit(value, kind, "inventory")
    return dict(reversed(post_order))


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


def parse_condition(text: str) -> Condition:
    """§4.2 (RestServer.java:1136-1175 @ 5a29293): the first operator, in QUERY_OPS order, that occurs in the
    condition; split once on it (splitByWholeSeparator); field trimmed, value not."""
    for op in QUERY_OPS:
        if op in text:
            parts = split_by_whole_separator(text, op, 2)
            if op in ("is null", "not null"):
                return Condition(java_trim(parts[0]) if parts else "", op, None)
            if len(parts) != 2:
                raise WireError(
                    400,
                    f"Invalid query parameter. The '{text}' in parameter[q] is not a key-value pair split by "
                    f"{QUERY_OP_NAMES[op]}",
                )
            return Condition(java_trim(parts[0]), op, parts[1])
    # asList(QUERY_OP_MAPPING.keySet()) is a list holding one set: hence the double brackets
    raise WireError(
        400,
        f"Invalid query parameter. The '{text}' in the parameter[q] doesn't contain any query operator. "
        f"Valid query operators are [[{', '.join(QUERY_OPS)}]]",
    )


def parse_query_parameters(query: list[tuple[str, str]]) -> QuerySpec:
    """RestServer.handleQueryApi (RestServer.java:1099-1190 @ 5a29293) for a query path without {uuid}."""
    spec = QuerySpec()
    seen: set[str] = set()
    for raw_name, raw_value in query:
        name = java_trim(raw_name)
        if "q".startswith(name):  # "q", and also an empty name: every value counts, untrimmed
            spec.conditions.append(parse_condition(raw_value))
            continue
        if name in seen:
            continue  # only the first value of any other parameter is read
        seen.add(name)
        value = java_trim(raw_value)
        if name in ("limit", "start"):
            number = java_parse_int(value)
            if number is None:
                raise WireError(400, f"Invalid query parameter. '{name}' must be an integer")
            setattr(spec, name, number)
        elif name in ("count", "replyWithCount"):
            # Boolean.parseBoolean: "true" in any case is true, anything else false, never an error
            setattr(spec, "count" if name == "count" else "reply_with_count", value.lower() == "true")
        elif name == "sort" and value:
            spec.sort = value
        elif name == "fields" and value:
            spec.fields = [f.strip() for f in value.split(",") if f.strip()]  # §4.2: only the first fields=
    return spec  # unknown parameters (sessionId, ...) are ignored


def java_parse_long(text: str) -> int:
    """Java's Long.parseLong: an optional sign and decimal digits, in the long range, nothing else (no trim).

    Anything else is the NumberFormatException RestServer's catch-all answers with 500 and its message.
    """
    digits = text[1:] if text[:1] in ("+", "-") else text
    if digits and all(c.isdecimal() for c in digits):
        value = -int(digits) if text[0] == "-" else int(digits)
        if -(2**63) <= value < 2**63:
            return value
    raise WireError(500, f'For input string: "{text}"')


def parse_access_key_date(value: str) -> dt.datetime:
    """§2: `EEE, dd MMM yyyy HH:mm:ss z`, English, case-insensitive; the zone is ignored (checkTimeZone=false)."""
    parts = value.strip().split(" ")
    if len(parts) != 6 or not parts[0].endswith(","):
        raise ValueError(value)
    weekday, day, month, year, clock, zone = parts
    weekday = weekday[:-1].lower()
    if weekday not in _WEEKDAYS or month.lower() not in _MONTHS or len(day) != 2 or len(year) != 4:
        raise ValueError(value)
    if not zone or not (zone[0].isalpha() or zone[0] in "+-"):
        raise ValueError(value)
    hh, mm, ss = clock.split(":")
    if not (len(hh) == len(mm) == len(ss) == 2):
        raise ValueError(value)
    when = dt.datetime(int(year), _MONTHS.index(month.lower()) + 1, int(day), int(hh), int(mm), int(ss))
    if when.weekday() != _WEEKDAYS.index(weekday):
        raise ValueError(value)
    return when


@dataclass
class _Call:
    """A request resolved to one API: its parameters, auth and the fault (if any) that applies to it."""

    request: Request
    api: Api
    variables: dict[str, str]
    params: dict[str, Any]
    query: list[tuple[str, str]]
    system_tags: list[str]
    fault: Fault | None = None
    auth: Auth = field(default_factory=Auth)
    job_uuid: str | None = None
    timeout_ms: int | None = None


class ZStackResponses:
    """Turns a Request into a Reply by calling the node; never raises for bad input."""

    def __init__(self, node: ZStackNode, now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.node = node
        self._now = now

    # ------------------------------------------------------------------ entry point

    def handle(self, request: Request, fault: Fault | None = None) -> Reply:
        try:
            return self._handle(request, fault)
        except WireError as exc:
            return Reply(exc.status, exc.text)
        except ApiError as exc:
            return Reply(503, {"error": exc.to_dict()})

    def _handle(self, request: Request, fault: Fault | None) -> Reply:
        if not request.path.startswith(API_PREFIX + "/"):
            raise WireError(404, f"no api mapping to {request.path}")
        path = request.path[len(API_PREFIX) :]
        if path.startswith(JOB_PATH_PREFIX) and path.count("/") == 3:
            return self._poll(request, path[len(JOB_PATH_PREFIX) :], fault)
        routed = match_route(path)
        if routed is None:
            raise WireError(404, f"no api mapping to {path}")  # §3.7
        apis, variables = routed
        body = self._parse_body(request)
        api = self._pick_api(apis, request.method, body, path)
        call = self._build_call(request, api, variables, body)
        call.fault = fault
        if api.auth:
            call.auth = self._authenticate(request, path)
        if not api.handler.startswith("query:"):
            # RestServer.java:906-909 @ 5a29293: a query API is handed to handleQueryApi right after the
            # Authorization header, so queries never run TypeVerifier nor look at X-Job-UUID / X-API-Timeout.
            self._verify_types(call)  # RestServer.java:946-959
            self._check_job_headers(call)  # RestServer.java:963-988
        if fault and fault.fails_job and not api.is_async:
            return Reply(503, {"error": fault.error})  # a synchronous call fails at once
        handler = api.handler
        if ":" in handler:
            kind, arg = handler.split(":", 1)
            return getattr(self, "_api_" + kind)(call, arg)
        return getattr(self, "_api_" + handler)(call)

    # ------------------------------------------------------------------ request parsing (§3.2, §3.7)

    @staticmethod
    def _parse_body(request: Request) -> dict[str, Any]:
        if request.method not in ("POST", "PUT") or not request.body.strip():
            return {}  # GET and DELETE bodies are ignored; an empty body is an empty map
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            # §3.7: the catch-all answers 500 with the exception's message
            raise WireError(500, f"com.google.gson.JsonSyntaxException: {exc}") from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            kind = "BEGIN_ARRAY" if isinstance(body, list) else type(body).__name__.upper()
            raise WireError(500, f"java.lang.IllegalStateException: Expected BEGIN_OBJECT but was {kind}")
        return body

    @staticmethod
    def _pick_api(apis: list[Api], method: str, body: dict[str, Any], path: str) -> Api:
        if len(apis) == 1:
            return apis[0]  # §3.7: a path with a single API does not check the HTTP method
        if method == "POST":
            found = [a for a in apis if a.method == "POST"]
            if not found:
                raise WireError(500, f"No creational API found for the path[{path}]")
            return found[0]
        if method == "PUT":
            for api in apis:
                if api.action and api.action in body:
                    return api
            raise WireError(400, f"the body doesn't contain action mapping to the URL[{path}]")
        if method in ("GET", "DELETE"):
            found = [a for a in apis if a.method == method]
            if not found:
                kind = "query" if method == "GET" else "delete"
                raise WireError(500, f"No {kind} API found for the path[{path}]")
            return found[0]
        raise WireError(405, f"The method[{method}] is not supported for the path[{path}]")

    @staticmethod
    def _build_call(request: Request, api: Api, variables: dict[str, str], body: dict[str, Any]) -> _Call:
        query = parse_qsl(request.query, keep_blank_values=True)
        tags: Any = []
        if request.method in ("GET", "DELETE"):
            # §3.2: parameters only from the query string; lists as repeated keys or k.0=...
            params: dict[str, Any] = {}
            for key, value in query:
                if key == "systemTags" or key.startswith("systemTags."):
                    tags.append(value)
                elif key not in params:
                    params[key] = value
        else:
            key = api.action or api.param_name
            params = body.get(key) if key else {}
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise WireError(400, f"the value of the body key[{key}] must be a JSON object")
            tags = body.get("systemTags")
            if tags is None:
                tags = params.get("systemTags")  # the SDKs' {"null": {"systemTags": [...]}} form (§5.1)
            if tags is None:
                tags = []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise WireError(400, "field[systemTags] must be a list of strings")
        params = dict(params)
        params.update(variables)  # §3.2: URL variables always override
        return _Call(request, api, variables, params, query, tags)

    def _authenticate(self, request: Request, path: str) -> Auth:
        """§1.4 and §2 (RestServer handleApi): the plain-text 400/403 answers come before any job exists."""
        header = request.headers.get("Authorization")
        if header is None:
            raise WireError(400, "missing header 'Authorization'")
        if header.startswith("OAuth"):
            return Auth(session_uuid=header.replace("OAuth", "", 1).strip())
        if header.startswith("ZStack"):
            parts = header[len("ZStack") :].strip().split(":")
            if len(parts) != 2:
                raise WireError(400, "accessKey format is 'ZStack AccessKeyId:Signature'")
            date = request.headers.get("Date")
            if date is None:
                raise WireError(400, "'Date' must be incuded in request header")  # sic (§2)
            try:
                sent = parse_access_key_date(date)
            except ValueError:
                raise WireError(400, "'Date' format error, correct format is 'EEE, dd MMM yyyy HH:mm:ss z'") from None
            if abs((self._now() - sent).total_seconds()) > REQUEST_DURATION_MINUTES * 60:
                raise WireError(403, "requestTimeTooSkewed")
            # §2: the URI signed is the path without the context path and without the query string
            return self.node.identity.authenticate_access_key(parts[0], parts[1], request.method, date, path)
        raise WireError(400, "Authorization type must be 'OAuth'")

    def _check_job_headers(self, call: _Call) -> None:
        """RestServer.java:963-988 @ 5a29293: X-Job-UUID (length only, then duplicates), then X-API-Timeout."""
        headers = call.request.headers
        job_uuid = headers.get("X-Job-UUID")  # the first value (get(0))
        if job_uuid is not None:
            if len(job_uuid) != 32:  # §3.2: only the length is checked, not that it is hexadecimal
                raise WireError(400, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped")
            # §3.2 / §14: a UUID an async job used is refused on every POST, PUT and DELETE, synchronous APIs too
            if call.request.method in ("POST", "PUT", "DELETE") and self.node.jobs.used(job_uuid):
                raise WireError(400, f"Duplicate job uuid[{job_uuid}]")
            call.job_uuid = job_uuid
        timeout = headers.get("X-API-Timeout")
        if timeout is not None:
            # Long.parseLong: a non-number is a NumberFormatException, which the catch-all answers 500 with its
            # message (RestServer.java:687-690); 0 and negative values are not refused.
            call.timeout_ms = java_parse_long(timeout) * 1000

    @staticmethod
    def _verify_types(call: _Call) -> None:
        """§3.2 TypeVerifier: wrong types for declared fields are a plain-text 400."""
        api, params = call.api, call.params
        for name in api.ints:
            value = params.get(name)
            if value is None:
                continue
            if isinstance(value, str):
                try:
                    params[name] = int(value.strip())
                    continue
                except ValueError:
                    pass
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value):
                params[name] = int(value)
                continue
            raise WireError(400, f"field[{name}] of API[{api.name}] must be an integer, but got {value!r}")
        for name in api.bools:
            value = params.get(name)
            if value is None or isinstance(value, bool):
                continue
            if isinstance(value, str) and value.lower() in ("true", "false"):
                params[name] = value.lower() == "true"
                continue
            raise WireError(400, f"field[{name}] of API[{api.name}] must be true or false, but got {value!r}")
        for name in api.strings:
            value = params.get(name)
            if value is not None and not isinstance(value, str):
                raise WireError(400, f"field[{name}] of API[{api.name}] must be a string, but got {value!r}")

    # ------------------------------------------------------------------ jobs (§3.3, §3.4)

    def _poll(self, request: Request, job_uuid: str, fault: Fault | None) -> Reply:
        if request.method != "GET":
            raise WireError(405, "only GET method is allowed for querying job status")
        if fault and fault.expires_job:
            raise WireError(404, "the job has been expired")
        if fault and fault.fails_job:
            return Reply(503, {"error": fault.error})
        result = self.node.jobs.poll(job_uuid)
        if result is None:
            raise WireError(404, "the job has been expired")
        status, body, api_name = result
        # RestServer.java:705-741 @ 5a29293: a done job is written by writeResponse with the poll's own headers, so
        # its schema depends on the poll's X-JSON-Schema (L1227-1231); a 202 or a 503 never has one
        if status == 200 and request.headers.get("X-JSON-Schema") is not None:
            api = API_BY_NAME.get(api_name)
            body["schema"] = json_schema(body, api.result if api else None)
        return Reply(status, body)

    def _accept(self, call: _Call) -> Job:
        fault = call.fault
        try:
            return self.node.jobs.accept(
                call.api.name,
                call.job_uuid,
                call.timeout_ms,
                injected_error=fault.error if fault and fault.fails_job else None,
                expired=bool(fault and fault.expires_job),
            )
        except DuplicateJobError:
            raise WireError(400, f"Duplicate job uuid[{call.job_uuid}]") from None

    @staticmethod
    def _accepted(call: _Call, job: Job) -> Reply:
        location = f"{call.request.base_url}{API_PREFIX}{JOB_PATH_PREFIX}{job.uuid}"
        return Reply(202, {"location": location, "apiTimeout": job.timeout_ms}, job=job)

    def _sync(self, call: _Call, body: dict[str, Any], login: bool = False) -> Reply:
        # RestServer.java:1227-1231 @ 5a29293: a reply that is not an APIQueryReply has a schema only when the
        # request has X-JSON-Schema (any value); an error (503) never has one
        if call.request.headers.get("X-JSON-Schema") is not None:
            body["schema"] = json_schema(body, call.api.result)
        return Reply(200, body, login=login)

    # ------------------------------------------------------------------ sessions (§1)

    def _api_login_account(self, call: _Call) -> Reply:
        p = call.params
        result = self.node.identity.login_by_account(p.get("accountName"), p.get("password"))
        return self._sync(call, result, login=True)

    def _api_login_user(self, call: _Call) -> Reply:
        p = call.params
        result = self.node.identity.login_by_user(
            p.get("accountName"), p.get("accountUuid"), p.get("userName"), p.get("password")
        )
        return self._sync(call, result, login=True)

    def _api_logout(self, call: _Call) -> Reply:
        return self._sync(call, self.node.identity.logout(call.variables["sessionUuid"]))

    def _api_validate_session(self, call: _Call) -> Reply:
        return self._sync(call, self.node.identity.validate_session(call.variables["sessionUuid"]))

    def _api_renew_session(self, call: _Call) -> Reply:
        job = self._accept(call)
        self.node.identity.renew_session(job, call.auth, call.variables["sessionUuid"], call.params.get("duration"))
        return self._accepted(call, job)

    def _api_get_version(self, call: _Call) -> Reply:
        return self._sync(call, self.node.queries.get_version())

    def _api_get_current_time(self, call: _Call) -> Reply:
        now = time.time()
        return self._sync(call, {"currentTime": {"MillionSeconds": int(now * 1000), "Seconds": int(now)}})

    def _api_unsupported(self, call: _Call) -> Reply:
        raise WireError(501, f"{call.api.name} is not implemented by the ZStack simulator")

    # ------------------------------------------------------------------ queries (§4)

    def _api_query(self, call: _Call, kind: str) -> Reply:
        if "uuid" in call.variables:
            # RestServer.java:1084-1097 @ 5a29293: GET .../{uuid} becomes the one condition uuid=<uuid> and is sent
            # at once: q, limit, start, count, sort, fields... are all ignored; the answer is still a list (§4.1)
            spec = QuerySpec(conditions=[Condition("uuid", "=", call.variables["uuid"])])
        else:
            spec = parse_query_parameters(call.query)
        result = self.node.queries.query(call.auth, kind, spec)
        result["schema"] = json_schema(result, kind)  # RestServer.java:1227-1231: every APIQueryReply has one
        return Reply(200, result)

    def _api_iso_candidates(self, call: _Call) -> Reply:
        return self._sync(call, self.node.queries.iso_candidates(call.auth, call.variables["vmInstanceUuid"]))

    def _api_vm_candidates(self, call: _Call) -> Reply:
        return self._sync(call, self.node.queries.vm_candidates(call.auth, call.variables["isoUuid"]))

    # ------------------------------------------------------------------ ISO and CD-ROM APIs (§5, §6, §7)

    def _api_attach_iso(self, call: _Call) -> Reply:
        job = self._accept(call)
        v = call.variables
        self.node.isos.attach(job, call.auth, v["vmInstanceUuid"], v["isoUuid"], call.system_tags)
        return self._accepted(call, job)

    def _api_detach_iso(self, call: _Call) -> Reply:
        job = self._accept(call)
        self.node.isos.detach(job, call.auth, call.variables["vmInstanceUuid"], call.params.get("isoUuid"))
        return self._accepted(call, job)

    def _api_create_cdrom(self, call: _Call) -> Reply:
        job = self._accept(call)
        p = call.params
        self.node.cdroms.create(
            job, call.auth, p.get("vmInstanceUuid"), p.get("name"), p.get("isoUuid"), p.get("description"),
            p.get("resourceUuid"),
        )  # fmt: skip
        return self._accepted(call, job)

    def _api_delete_cdrom(self, call: _Call) -> Reply:
        job = self._accept(call)
        self.node.cdroms.delete(job, call.auth, call.variables["uuid"])
        return self._accepted(call, job)

    def _api_update_cdrom(self, call: _Call) -> Reply:
        job = self._accept(call)
        p = call.params
        self.node.cdroms.update(job, call.auth, call.variables["uuid"], p.get("name"), p.get("description"))
        return self._accepted(call, job)

    def _api_set_default_cdrom(self, call: _Call) -> Reply:
        job = self._accept(call)
        self.node.cdroms.set_default(job, call.auth, call.variables["vmInstanceUuid"], call.variables["uuid"])
        return self._accepted(call, job)

    # ------------------------------------------------------------------ image APIs (§14)

    @staticmethod
    def _list_param(call: _Call, name: str) -> list[str] | None:
        """A List<String> field: repeated keys or name.N= in a GET/DELETE query string (§3.2), a JSON list in a
        PUT/POST body."""
        if call.request.method in ("GET", "DELETE"):
            values = [v for k, v in call.query if k == name or k.startswith(name + ".")]
            return values or None
        value = call.params.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise WireError(400, f"field[{name}] of API[{call.api.name}] must be a list of strings, but got {value!r}")
        return value

    def _api_delete_image(self, call: _Call) -> Reply:
        job = self._accept(call)
        self.node.images.delete(job, call.auth, call.variables["uuid"], self._list_param(call, "backupStorageUuids"))
        return self._accepted(call, job)

    def _api_expunge_image(self, call: _Call) -> Reply:
        job = self._accept(call)
        self.node.images.expunge(job, call.auth, call.variables["uuid"], self._list_param(call, "backupStorageUuids"))
        return self._accepted(call, job)

    def _api_recover_image(self, call: _Call) -> Reply:
        job = self._accept(call)
        self.node.images.recover(job, call.auth, call.variables["uuid"], self._list_param(call, "backupStorageUuids"))
        return self._accepted(call, job)

    def _api_change_image_state(self, call: _Call) -> Reply:
        job = self._accept(call)
        self.node.images.change_state(job, call.auth, call.variables["uuid"], call.params.get("stateEvent"))
        return self._accepted(call, job)

    # ------------------------------------------------------------------ VM lifecycle (§13)

    _UPDATE_VM_FIELDS_NOT_SERVED = (
        "state", "defaultL3NetworkUuid", "platform", "cpuNum", "memorySize", "reservedMemorySize", "guestOsType",
    )  # fmt: skip

    def _api_update_vm(self, call: _Call) -> Reply:
        unserved = [f for f in self._UPDATE_VM_FIELDS_NOT_SERVED if call.params.get(f) is not None]
        if unserved:
            raise WireError(
                501, f"UpdateVmInstance of {', '.join(unserved)} is not implemented by the ZStack simulator"
            )
        job = self._accept(call)
        p = call.params
        self.node.vms.update(
            job, call.auth, call.variables["uuid"], p.get("name"), p.get("description"), call.system_tags
        )
        return self._accepted(call, job)

    def _api_vm(self, call: _Call, action: str) -> Reply:
        job = self._accept(call)
        self.node.vms.change_state(job, call.auth, action, call.variables["uuid"], stop_type=call.params.get("type"))
        return self._accepted(call, job)
