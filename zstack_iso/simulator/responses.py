"""Wire layer of the ZStack API (like moto's responses.py): route, parse, call one part of the node, render.

It follows RestServer's request handling (§3.2, §3.7): path routing with literal paths first (urls.py), unique
paths that ignore the HTTP method, shared paths resolved by method or by the action key of a PUT body, URL
variables over body and query values, and the plain-text answers for everything that fails before a ZStack
message exists (wire.py).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from .errors import ApiError, DuplicateJobError
from .faults import Fault
from .jobs import Job
from .models import ZStackNode
from .queries import Condition, QuerySpec
from .sessions import Auth
from .urls import API_BY_NAME, match_route
from .wire import (
    Call,
    Reply,
    Request,
    WireError,
    build_call,
    java_parse_long,
    json_schema,
    list_param,
    parse_access_key_date,
    parse_body,
    parse_query_parameters,
    pick_api,
    verify_types,
)

API_PREFIX = "/zstack"  # the web app's context path (§0 URL base)
JOB_PATH_PREFIX = "/v1/api-jobs/"
REQUEST_DURATION_MINUTES = 15  # §2 RestServer.checkTime


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
        body = parse_body(request)
        api = pick_api(apis, request.method, body, path)
        call = build_call(request, api, variables, body)
        call.fault = fault
        if api.auth:
            call.auth = self._authenticate(request, path)
        if not api.handler.startswith("query:"):
            # RestServer.java:906-909 @ 5a29293: a query API is handed to handleQueryApi right after the
            # Authorization header, so queries never run TypeVerifier nor look at X-Job-UUID / X-API-Timeout.
            verify_types(call)  # RestServer.java:946-959
            self._check_job_headers(call)  # RestServer.java:963-988
        if fault and fault.fails_job and not api.is_async:
            return Reply(503, {"error": fault.error})  # a synchronous call fails at once
        handler = api.handler
        if ":" in handler:
            kind, arg = handler.split(":", 1)
            return getattr(self, "_api_" + kind)(call, arg)
        return getattr(self, "_api_" + handler)(call)

    # ------------------------------------------------------------------ request parsing (§3.2, §3.7)

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

    def _check_job_headers(self, call: Call) -> None:
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

    def _accept(self, call: Call) -> Job:
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
    def _accepted(call: Call, job: Job) -> Reply:
        location = f"{call.request.base_url}{API_PREFIX}{JOB_PATH_PREFIX}{job.uuid}"
        return Reply(202, {"location": location, "apiTimeout": job.timeout_ms}, job=job)

    def _sync(self, call: Call, body: dict[str, Any], login: bool = False) -> Reply:
        # RestServer.java:1227-1231 @ 5a29293: a reply that is not an APIQueryReply has a schema only when the
        # request has X-JSON-Schema (any value); an error (503) never has one
        if call.request.headers.get("X-JSON-Schema") is not None:
            body["schema"] = json_schema(body, call.api.result)
        return Reply(200, body, login=login)

    # ------------------------------------------------------------------ sessions (§1)

    def _api_login_account(self, call: Call) -> Reply:
        p = call.params
        result = self.node.identity.login_by_account(p.get("accountName"), p.get("password"))
        return self._sync(call, result, login=True)

    def _api_login_user(self, call: Call) -> Reply:
        p = call.params
        result = self.node.identity.login_by_user(
            p.get("accountName"), p.get("accountUuid"), p.get("userName"), p.get("password")
        )
        return self._sync(call, result, login=True)

    def _api_logout(self, call: Call) -> Reply:
        return self._sync(call, self.node.identity.logout(call.variables["sessionUuid"]))

    def _api_validate_session(self, call: Call) -> Reply:
        return self._sync(call, self.node.identity.validate_session(call.variables["sessionUuid"]))

    def _api_renew_session(self, call: Call) -> Reply:
        job = self._accept(call)
        self.node.identity.renew_session(job, call.auth, call.variables["sessionUuid"], call.params.get("duration"))
        return self._accepted(call, job)

    def _api_get_version(self, call: Call) -> Reply:
        return self._sync(call, self.node.queries.get_version())

    def _api_get_current_time(self, call: Call) -> Reply:
        now = time.time()
        return self._sync(call, {"currentTime": {"MillionSeconds": int(now * 1000), "Seconds": int(now)}})

    def _api_unsupported(self, call: Call) -> Reply:
        raise WireError(501, f"{call.api.name} is not implemented by the ZStack simulator")

    # ------------------------------------------------------------------ queries (§4)

    def _api_query(self, call: Call, kind: str) -> Reply:
        if "uuid" in call.variables:
            # RestServer.java:1084-1097 @ 5a29293: GET .../{uuid} becomes the one condition uuid=<uuid> and is sent
            # at once: q, limit, start, count, sort, fields... are all ignored; the answer is still a list (§4.1)
            spec = QuerySpec(conditions=[Condition("uuid", "=", call.variables["uuid"])])
        else:
            spec = parse_query_parameters(call.query)
        result = self.node.queries.query(call.auth, kind, spec)
        result["schema"] = json_schema(result, kind)  # RestServer.java:1227-1231: every APIQueryReply has one
        return Reply(200, result)

    def _api_iso_candidates(self, call: Call) -> Reply:
        return self._sync(call, self.node.queries.iso_candidates(call.auth, call.variables["vmInstanceUuid"]))

    def _api_vm_candidates(self, call: Call) -> Reply:
        return self._sync(call, self.node.queries.vm_candidates(call.auth, call.variables["isoUuid"]))

    # ------------------------------------------------------------------ ISO and CD-ROM APIs (§5, §6, §7)

    def _api_attach_iso(self, call: Call) -> Reply:
        job = self._accept(call)
        v = call.variables
        self.node.isos.attach(job, call.auth, v["vmInstanceUuid"], v["isoUuid"], call.system_tags)
        return self._accepted(call, job)

    def _api_detach_iso(self, call: Call) -> Reply:
        job = self._accept(call)
        self.node.isos.detach(job, call.auth, call.variables["vmInstanceUuid"], call.params.get("isoUuid"))
        return self._accepted(call, job)

    def _api_create_cdrom(self, call: Call) -> Reply:
        job = self._accept(call)
        p = call.params
        self.node.cdroms.create(
            job, call.auth, p.get("vmInstanceUuid"), p.get("name"), p.get("isoUuid"), p.get("description"),
            p.get("resourceUuid"),
        )  # fmt: skip
        return self._accepted(call, job)

    def _api_delete_cdrom(self, call: Call) -> Reply:
        job = self._accept(call)
        self.node.cdroms.delete(job, call.auth, call.variables["uuid"])
        return self._accepted(call, job)

    def _api_update_cdrom(self, call: Call) -> Reply:
        job = self._accept(call)
        p = call.params
        self.node.cdroms.update(job, call.auth, call.variables["uuid"], p.get("name"), p.get("description"))
        return self._accepted(call, job)

    def _api_set_default_cdrom(self, call: Call) -> Reply:
        job = self._accept(call)
        self.node.cdroms.set_default(job, call.auth, call.variables["vmInstanceUuid"], call.variables["uuid"])
        return self._accepted(call, job)

    # ------------------------------------------------------------------ image APIs (§14)

    def _api_delete_image(self, call: Call) -> Reply:
        job = self._accept(call)
        self.node.images.delete(job, call.auth, call.variables["uuid"], list_param(call, "backupStorageUuids"))
        return self._accepted(call, job)

    def _api_expunge_image(self, call: Call) -> Reply:
        job = self._accept(call)
        self.node.images.expunge(job, call.auth, call.variables["uuid"], list_param(call, "backupStorageUuids"))
        return self._accepted(call, job)

    def _api_recover_image(self, call: Call) -> Reply:
        job = self._accept(call)
        self.node.images.recover(job, call.auth, call.variables["uuid"], list_param(call, "backupStorageUuids"))
        return self._accepted(call, job)

    def _api_change_image_state(self, call: Call) -> Reply:
        job = self._accept(call)
        self.node.images.change_state(job, call.auth, call.variables["uuid"], call.params.get("stateEvent"))
        return self._accepted(call, job)

    # ------------------------------------------------------------------ VM lifecycle (§13)

    _UPDATE_VM_FIELDS_NOT_SERVED = (
        "state", "defaultL3NetworkUuid", "platform", "cpuNum", "memorySize", "reservedMemorySize", "guestOsType",
    )  # fmt: skip

    def _api_update_vm(self, call: Call) -> Reply:
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

    def _api_vm(self, call: Call, action: str) -> Reply:
        job = self._accept(call)
        self.node.vms.change_state(job, call.auth, action, call.variables["uuid"], stop_type=call.params.get("type"))
        return self._accepted(call, job)
