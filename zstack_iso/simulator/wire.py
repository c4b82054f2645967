"""The wire's vocabulary and RestServer's parsing (§3.2, §3.7, §4.2): requests, replies, the plain-text errors,
query parameters, bodies, the TypeVerifier, and the JSON schema of a reply (§14)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .faults import Fault
from .java import java_parse_int, java_trim, split_by_whole_separator
from .jobs import Job
from .queries import QUERY_OP_NAMES, QUERY_OPS, Condition, QuerySpec
from .records import INVENTORY_CLASSES
from .sessions import Auth
from .urls import Api

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


@dataclass
class Call:
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


def parse_body(request: Request) -> dict[str, Any]:
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


def pick_api(apis: list[Api], method: str, body: dict[str, Any], path: str) -> Api:
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


def build_call(request: Request, api: Api, variables: dict[str, str], body: dict[str, Any]) -> Call:
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
    return Call(request, api, variables, params, query, tags)


def verify_types(call: Call) -> None:
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


def list_param(call: Call, name: str) -> list[str] | None:
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
