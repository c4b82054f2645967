"""ZStack REST client: sessions, async jobs, retries and lost responses, handled once (shared/zstack-api.md).

One ``ZStackClient`` is meant to be shared by every thread of a process. It

- authenticates by account (SHA-512 of the password, §1.1), by AccessKey signature (§2) or with a given
  session UUID, and keeps account sessions in a process-wide cache so that a process logs in once per
  endpoint and account; on ``ID.1001`` one thread logs in again and the call is repeated once (§1.5);
- sends every asynchronous call with a client-generated ``X-Job-UUID`` and polls the job on the configured
  endpoint (§3.3, §3.4), early and then less often, until the sooner of ``job_timeout`` and the node's
  ``apiTimeout``;
- never submits a call twice blindly: when a submit gets no answer it polls the job by its UUID first,
  submits once more with the same UUID only if the node does not know it (a duplicate is refused, §3.2),
  and settles a job whose record is gone by reading the VM's state;
- retries reads (GET) on connection errors and on 502/503/504 that carry no ZStack error body, with
  urllib3's ``Retry`` on the requests adapter; a 503 with ``{"error": …}`` is an answer (§3.6); a job poll
  that still gets no answer is repeated with the normal backoff until the job's deadline, never reported as a
  failure before it;
- never logs a password, its hash, an AccessKey secret or a session UUID.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import os
import re
import threading
import time
import uuid as uuidlib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from .errors import (
    CLIENT_CONFIG,
    CLIENT_HTTP,
    CLIENT_JOB_LOST,
    CLIENT_PROTOCOL,
    CLIENT_TIMEOUT,
    CLIENT_TLS,
    CLIENT_UNREACHABLE,
    ID_INVALID_SESSION,
    SYS_OPERATION_FAILED,
    ZStackError,
)
from .models import Image, Session, VmCdRom, VmInstance

__all__ = ["DEFAULT_JOB_TIMEOUT", "PollPolicy", "ZStackClient", "stable_job_uuid"]

log = logging.getLogger("zstack_iso.client")

M = TypeVar("M", bound=BaseModel)

DEFAULT_CONTEXT_PATH = "/zstack"  # RESTFacade.path (§0 URL base)
DEFAULT_JOB_TIMEOUT = 1800.0  # the node's default apiTimeout, 30 min (§3.3)
_TRANSIENT_STATUSES = frozenset({502, 503, 504})
_ERROR_TEXT_LIMIT = 500
_ODD_POLL_ANSWERS_TOLERATED = 2


# --------------------------------------------------------------------------------------------- polling


@dataclass(frozen=True)
class PollPolicy:
    """How long to wait before the next poll of a job, given the time since it was submitted.

    The adaptive default polls every ``floor`` seconds at first, then every ``ratio`` of the elapsed time,
    at most every ``cap`` seconds: a job's end is seen within 6 % of its duration (or 15 ms), which leaves
    room for round trips inside a budget of max(10 %, 30 ms), and a long job costs one request a second.
    ``PollPolicy.fixed(1.0)`` is the Java/Python SDK policy, ``PollPolicy.fixed(2.0)`` the Go SDK's (§3.8).
    """

    floor: float = 0.015
    ratio: float = 0.06
    cap: float = 1.0

    def next_delay(self, elapsed: float) -> float:
        return min(self.cap, max(self.floor, self.ratio * elapsed))

    @classmethod
    def fixed(cls, interval: float) -> PollPolicy:
        return cls(floor=interval, ratio=0.0, cap=interval)


ADAPTIVE_POLLING = PollPolicy()
_VM_STATE_POLLING = PollPolicy(floor=0.05, ratio=0.1, cap=1.0)


# ------------------------------------------------------------------------------------------ transport


_ERROR_KEY = re.compile(rb'"error"\s*:\s*\{')


def _is_zstack_answer(response: Any) -> bool:
    """True when a 502/503/504 carries ZStack's ``{"error": …}`` body (§3.6): the node's answer.

    Looks at the bytes already buffered without consuming them, so the body stays readable for the caller.
    When it cannot look, it says "answer": not retrying is the safe side.
    """
    if response.headers.get("Content-Length") == "0":
        return False
    peek = getattr(getattr(response, "_fp", None), "peek", None)
    if peek is None:
        return True
    try:
        head = bytes(peek(4096)).lstrip()
    except Exception:  # noqa: BLE001 - a failed peek must not turn into a retry
        return True
    return head.startswith(b"{") and _ERROR_KEY.search(head) is not None


class _TransientOnlyRetry(Retry):
    """urllib3 Retry that treats only body-less 502/503/504 as transient.

    A 503 with a ZStack error body is the node's answer (a failed job, an expired session): returning it
    at once, instead of retrying it, is done by ending the retries with ``raise_on_status=False``, which
    makes urllib3 hand back the response as it is.
    """

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        if (
            error is None
            and response is not None
            and response.status in _TRANSIENT_STATUSES
            and _is_zstack_answer(response)
        ):
            raise MaxRetryError(_pool, url, ResponseError("a ZStack error answer is not retried"))  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _retry(retries: int, methods: Iterable[str]) -> Retry:
    return _TransientOnlyRetry(
        total=retries + 1,
        connect=retries,  # the request never left: safe for every method
        read=retries,  # only for `methods` (urllib3 checks allowed_methods for read errors)
        status=retries,
        other=0,  # TLS and other failures are not going to fix themselves
        redirect=0,
        allowed_methods=frozenset(methods),
        status_forcelist=_TRANSIENT_STATUSES,
        backoff_factor=0.2,
        backoff_max=2.0,
        raise_on_status=False,
        respect_retry_after_header=False,  # a gateway's Retry-After could stall a call far past its timeout
    )


def _finite_number(value: object) -> bool:
    """An int or float that is neither nan nor ±inf (bool is not a number of seconds)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _NoAnswer(Exception):
    """The node gave no usable answer; ``sent`` says whether the request may have reached it."""

    def __init__(self, reason: str, *, sent: bool, timeout: bool = False, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.timeout = timeout
        self.status = status


def _never_sent(exc: requests.exceptions.RequestException) -> bool:
    """Connection refused / connect timeout: the request never reached the node."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, ConnectTimeoutError)  # NewConnectionError is a subclass


_SESSION_IN_PATH = re.compile(r"(/accounts/sessions/)[^/?\s\"']+", re.IGNORECASE)


def _redact(text: str) -> str:
    """Hide session UUIDs that appear in logout/validate paths (§1.3)."""
    return _SESSION_IN_PATH.sub(r"\1<session>", text)


class _RedactSessionFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_filter_lock = threading.Lock()
_filter_installed = False


def _install_log_redaction() -> None:
    """urllib3 logs request paths at DEBUG; the logout path holds a session UUID (§1.3)."""
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            for name in ("urllib3.connectionpool", "urllib3.util.retry"):
                logging.getLogger(name).addFilter(_RedactSessionFilter())
            _filter_installed = True


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(now: datetime | None = None) -> str:
    """The AccessKey ``Date`` header, ``EEE, dd MMM yyyy HH:mm:ss z`` in English (§2).

    Local time with the local zone abbreviation, as the Python and Go SDKs send (a node with
    ``rest.checkTimeZone=false`` compares the local fields); UTC as ``GMT`` when the zone has no
    alphabetic abbreviation.
    """
    local = (now or datetime.now(timezone.utc)).astimezone()
    name = local.tzname() or ""
    if local.utcoffset() == timedelta(0) or not re.fullmatch(r"[A-Z]{2,5}", name):
        local, name = local.astimezone(timezone.utc), "GMT"
    return (
        f"{_DAYS[local.weekday()]}, {local.day:02d} {_MONTHS[local.month - 1]} {local.year} "
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d} {name}"
    )


def access_key_signature(secret: str, method: str, date: str, signed_path: str) -> str:
    """base64(HMAC-SHA1(secret, METHOD + "\\n" + Date + "\\n" + "/v1/…")) (§2, all three SDKs)."""
    string_to_sign = f"{method.upper()}\n{date}\n{signed_path}"
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# ------------------------------------------------------------------------------------ session cache


class _CachedSession:
    """One account session shared by every client of the process for the same endpoint and account."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.uuid: str | None = None
        self.users = 0

    def get(self, login: Callable[[], str]) -> str:
        with self.lock:
            if self.uuid is None:
                self.uuid = login()
            return self.uuid

    def renew(self, stale: str | None, login: Callable[[], str]) -> str:
        """Log in again unless another thread already replaced the stale session (one re-login)."""
        with self.lock:
            if self.uuid is None or self.uuid == stale:
                self.uuid = login()
            return self.uuid

    def take(self) -> str | None:
        with self.lock:
            sid, self.uuid = self.uuid, None
            return sid


class _SessionCache:
    """Process-wide sessions keyed by (endpoint, account, fingerprint of the password's SHA-512).

    The key holds a SHA-256 of the SHA-512 hex, never the password or the hash the node accepts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str], _CachedSession] = {}

    def acquire(self, key: tuple[str, str, str]) -> _CachedSession:
        with self._lock:
            entry = self._entries.setdefault(key, _CachedSession())
            entry.users += 1
            return entry

    def release(self, entry: _CachedSession) -> bool:
        """Drop one user; True when it was the last one."""
        with self._lock:
            entry.users -= 1
            return entry.users <= 0

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


_SESSIONS = _SessionCache()


def forget_shared_sessions() -> None:
    """Make the next clients of this process log in afresh; clients already made keep their session.

    For a process that outlives a node's sessions, such as a test suite that resets its simulator.
    """
    _SESSIONS.forget()


# ---------------------------------------------------------------------------------------------- jobs


@dataclass
class _Job:
    uuid: str
    api: str
    request: str
    started: float
    deadline: float
    timeout_source: str
    accepted: bool = False  # the node told us it knows the job (202, a poll, or a duplicate refusal)
    resubmitted: bool = False
    uncertain: bool = False  # a submit went unanswered: the job may have run
    keyed: bool = False  # the caller chose the job UUID (an idempotency key)
    maybe_old: bool = False  # a keyed job UUID that may name an earlier call's job: verify by state
    polls: int = 0
    odd_answers: int = 0  # poll answers that are no job state (e.g. a plain-text 500)
    unanswered_polls: int = 0  # polls that got no answer even after the adapter's retries
    last_no_answer: str | None = None  # why the latest poll got no answer; None once one is answered


class _JobOutcomeUnknown(Exception):
    """The job's result cannot be read any more; the caller settles by reading state (§3.4 404)."""

    def __init__(self, job: _Job, reason: str, error: ZStackError | None = None) -> None:
        super().__init__(reason)
        self.job = job
        self.reason = reason
        self.error = error
        self.reused = job.maybe_old


# -------------------------------------------------------------------------------------------- client


_JOB_NAMESPACE = uuidlib.UUID("6f1c2a57-3b0e-4d8a-9a61-2f5e7c9d0b14")


def stable_job_uuid(*parts: str) -> str:
    """A deterministic X-Job-UUID for one logical call, e.g. ``stable_job_uuid("attach", vm, iso)``.

    Two processes making the same call get the same job UUID, so the second finds the first's job instead
    of submitting again (§3.2). An older, unrelated job with the same UUID is told apart by the VM's state.
    """
    return uuidlib.uuid5(_JOB_NAMESPACE, "\x1f".join(str(p).lower() for p in parts)).hex


def _job_uuid(value: str) -> str:
    """A caller-chosen X-Job-UUID: 32 hex characters, dashes allowed (§3.2)."""
    text = value.replace("-", "").lower()
    if not re.fullmatch(r"[0-9a-f]{32}", text):
        raise ZStackError(CLIENT_CONFIG, details=f"job_uuid must be 32 hexadecimal characters, got {value!r}")
    return text


def _quote(segment: str) -> str:
    return quote(str(segment), safe="")


def _condition(name: str, value: Any) -> str:
    """``name=value`` for ZStack's ``q`` (§4.2); lists become IN (``?=``), None ``is null``."""
    field_name = name if any(c.isupper() for c in name) or "." in name else to_camel(name)
    if value is None:
        return f"{field_name} is null"
    if isinstance(value, (list, tuple, set, frozenset)):
        return f"{field_name}?=" + ",".join(str(v) for v in value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"{field_name}={value}"


class ZStackClient:
    """A thread-safe client for one ZStack management node.

    ``endpoint`` is a base URL such as ``http://127.0.0.1:8080`` or ``https://zstack.example.com/zstack``;
    the context path defaults to ``/zstack`` and ``/v1`` is added (§0). Give exactly one way to
    authenticate: ``account_name`` and ``account_password``, ``access_key_id`` and ``access_key_secret``,
    or ``session_uuid``.

    ``poll_interval``: None for adaptive polling (``PollPolicy()``), a number of seconds for a fixed
    interval, or a ``PollPolicy``. ``job_timeout``: seconds to wait for a job (the node's ``apiTimeout``
    also bounds it). ``verify``: True, False (with a warning) or the path of a CA bundle.
    ``settle_timeout``: how long to re-read state when a job's own result is lost.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        account_name: str | None = None,
        account_password: str | None = None,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        session_uuid: str | None = None,
        verify: bool | str = True,
        job_timeout: float = DEFAULT_JOB_TIMEOUT,
        poll_interval: float | PollPolicy | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retries: int = 3,
        settle_timeout: float = 10.0,
        max_connections: int = 32,
        share_session: bool = True,
    ) -> None:
        self.endpoint, self.api_url = self._parse_endpoint(endpoint)
        self._api_path = urlsplit(self.api_url).path  # e.g. /zstack/v1, as shown in error messages
        self._closed = False

        for name, value in (
            ("job_timeout", job_timeout),
            ("connect_timeout", connect_timeout),
            ("read_timeout", read_timeout),
        ):
            # nan compares False with everything, so every deadline check would pass: refuse it, and inf.
            if not _finite_number(value) or value <= 0:
                raise self._config_error(f"{name} must be a positive number of seconds, got {value!r}")
        if not _finite_number(settle_timeout) or settle_timeout < 0:
            raise self._config_error(f"settle_timeout must be a number of seconds, 0 or more, got {settle_timeout!r}")
        if retries < 0:
            raise self._config_error("retries must not be negative")
        self.job_timeout = float(job_timeout)
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.settle_timeout = float(settle_timeout)
        if poll_interval is None:
            self.poll_policy = ADAPTIVE_POLLING
        elif isinstance(poll_interval, PollPolicy) and all(
            _finite_number(v) and v >= 0 for v in (poll_interval.floor, poll_interval.ratio, poll_interval.cap)
        ):
            self.poll_policy = poll_interval
        elif _finite_number(poll_interval) and poll_interval > 0:
            self.poll_policy = PollPolicy.fixed(float(poll_interval))
        else:
            raise self._config_error(
                f"poll_interval must be None, a positive number or a PollPolicy, got {poll_interval!r}"
            )

        self.verify = self._check_verify(verify)
        self._account_name = account_name
        self._password_sha512: str | None = None
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._given_session = session_uuid
        self._session_entry: _CachedSession | None = None
        self._auth_kind = self._check_credentials(
            account_name, account_password, access_key_id, access_key_secret, session_uuid
        )
        if self._auth_kind == "account":
            assert account_password is not None and account_name is not None
            self._password_sha512 = hashlib.sha512(account_password.encode("utf-8")).hexdigest()
            fingerprint = hashlib.sha256(self._password_sha512.encode()).hexdigest()
            key = (self.api_url, account_name, fingerprint)
            self._session_entry = _SESSIONS.acquire(key) if share_session else _CachedSession()

        _install_log_redaction()
        self._http = requests.Session()
        reads = HTTPAdapter(max_retries=_retry(retries, {"GET"}), pool_connections=4, pool_maxsize=max_connections)
        # Login, logout and getVersion are synchronous and harmless to repeat (§1.1, §1.3, §9).
        harmless = HTTPAdapter(
            max_retries=_retry(retries, {"GET", "PUT", "DELETE"}), pool_connections=2, pool_maxsize=8
        )
        self._http.mount("http://", reads)
        self._http.mount("https://", reads)
        for path in ("/accounts/login", "/accounts/sessions/", "/management-nodes/actions"):
            self._http.mount(self.api_url + path, harmless)

    # ------------------------------------------------------------------------------ configuration

    def _config_error(self, details: str) -> ZStackError:
        return ZStackError(CLIENT_CONFIG, details=details, endpoint=getattr(self, "endpoint", None))

    @staticmethod
    def _parse_endpoint(endpoint: str) -> tuple[str, str]:
        """(the endpoint as shown in messages, the API base URL ending in /v1)."""
        example = "an http(s) URL such as http://127.0.0.1:8080"
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ZStackError(CLIENT_CONFIG, details=f"endpoint must be {example}")
        parts = urlsplit(endpoint.strip())
        if parts.username or parts.password or "@" in parts.netloc:
            # Never echo it: the URL holds a credential.
            raise ZStackError(
                CLIENT_CONFIG,
                details="endpoint must not contain credentials; pass account_name/account_password instead",
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ZStackError(CLIENT_CONFIG, details=f"endpoint must be {example}, got {endpoint!r}")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ZStackError(CLIENT_CONFIG, details=f"endpoint has an invalid port: {endpoint!r}") from None
        path = parts.path.rstrip("/")
        if path.endswith("/v1"):  # the API base was pasted
            path = path[: -len("/v1")]
        shown = f"{parts.scheme}://{parts.netloc}{path}"
        return shown, shown + ("" if path else DEFAULT_CONTEXT_PATH) + "/v1"

    def _check_credentials(
        self,
        account_name: str | None,
        account_password: str | None,
        access_key_id: str | None,
        access_key_secret: str | None,
        session_uuid: str | None,
    ) -> str:
        ways = {
            "account": (account_name, account_password),
            "access_key": (access_key_id, access_key_secret),
            "session": (session_uuid, session_uuid),
        }
        given = [kind for kind, values in ways.items() if any(values)]
        if len(given) > 1:
            raise self._config_error(
                "give exactly one way to authenticate: account_name+account_password, "
                "access_key_id+access_key_secret, or session_uuid (got " + " and ".join(given) + ")"
            )
        if not given:
            raise self._config_error(
                "no credentials: give account_name+account_password, access_key_id+access_key_secret, or session_uuid"
            )
        kind = given[0]
        if not all(ways[kind]):
            missing = {
                "account": "account_name and account_password",
                "access_key": "access_key_id and access_key_secret",
            }[kind]
            raise self._config_error(f"incomplete credentials: {missing} must both be given")
        return kind

    def _check_verify(self, verify: bool | str) -> bool | str:
        if verify is False:
            message = (
                f"TLS certificate verification is disabled for {self.endpoint}; "
                "give verify=<CA bundle path> instead to trust a private CA"
            )
            if self.endpoint.startswith("https://"):
                warnings.warn(message, stacklevel=3)
                log.warning(message)
            return False
        if verify is True or verify is None:
            return True
        if isinstance(verify, str):
            if not os.path.exists(verify):
                raise self._config_error(f"verify names a CA bundle that does not exist: {verify!r}")
            return verify
        raise self._config_error(f"verify must be True, False or a CA bundle path, got {verify!r}")

    def __repr__(self) -> str:
        who = {
            "account": f"account {self._account_name!r}",
            "access_key": f"AccessKey {self._access_key_id!r}",
            "session": "a given session",
        }[self._auth_kind]
        return f"ZStackClient({self.endpoint!r}, {who})"

    # -------------------------------------------------------------------------------- lifecycle

    def close(self, *, logout: bool = True) -> None:
        """Release the client. The shared session is logged out when its last client closes
        (``logout=False`` leaves it cached for later clients of this process)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._session_entry is not None:
                last = _SESSIONS.release(self._session_entry)
                if last and logout:
                    sid = self._session_entry.take()
                    if sid is not None:
                        self._logout(sid)
        finally:
            self._http.close()

    def __enter__(self) -> ZStackClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------- authentication

    def login(self) -> Session:
        """LogInByAccount (§1.1): a new session, owned by the caller (who logs it out).

        Not needed for the client's own calls, which log in on first use with the shared session.
        """
        if self._auth_kind != "account":
            raise self._config_error("login() needs account_name and account_password")
        return self._login_inventory()

    def _login_inventory(self) -> Session:
        api, request = "LogInByAccount", f"PUT {self._api_path}/accounts/login"
        body = {"logInByAccount": {"accountName": self._account_name, "password": self._password_sha512}}
        try:
            resp = self._send("PUT", "/accounts/login", json_body=body, auth=False)
        except _NoAnswer as exc:
            raise self._no_answer_error(exc, api, request) from None
        if resp.status_code != 200:
            raise self._answer_error(resp, api, request)
        data = self._json_object(resp, api, request)
        try:
            session = Session.model_validate(data.get("inventory") or {})
        except ValidationError as exc:
            raise self._protocol_error(api, request, "the login answer has no session inventory") from exc
        log.info("logged in to %s as account %s", self.endpoint, self._account_name)
        return session

    def _login(self) -> str:
        return self._login_inventory().uuid

    def _logout(self, sid: str) -> None:
        try:
            self._send("DELETE", f"/accounts/sessions/{_quote(sid)}", auth=False)
            log.info("logged out of %s (account %s)", self.endpoint, self._account_name)
        except (_NoAnswer, ZStackError) as exc:  # closing must not fail: the session expires anyway (§1.4)
            log.debug("logout from %s failed: %s", self.endpoint, _redact(str(exc)))

    def _session(self) -> str | None:
        if self._closed:
            raise self._config_error("this ZStackClient was closed")
        if self._session_entry is not None:
            return self._session_entry.get(self._login)
        return self._given_session

    def _relogin(self, stale: str | None) -> bool:
        """On ID.1001: log in again (once per stale session, whichever thread gets here first)."""
        if self._session_entry is None:
            return False
        fresh = self._session_entry.renew(stale, self._login)
        return fresh != stale

    def _auth_headers(self, method: str, path: str, sid: str | None) -> dict[str, str]:
        if self._auth_kind == "access_key":
            assert self._access_key_id is not None and self._access_key_secret is not None
            date = http_date()
            signature = access_key_signature(self._access_key_secret, method, date, "/v1" + path)
            return {"Date": date, "Authorization": f"ZStack {self._access_key_id}:{signature}"}
        if sid is None:
            return {}
        return {"Authorization": f"OAuth {sid}"}  # §1.4

    # ---------------------------------------------------------------------------------- transport

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        sid: str | None = None,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """One HTTP exchange (with the adapter's retries). Raises _NoAnswer when there is no usable answer."""
        all_headers = {"Accept": "application/json"}
        if headers:
            all_headers.update(headers)
        if auth:
            all_headers.update(self._auth_headers(method, path, sid))
        try:
            resp = self._http.request(
                method,
                self.api_url + path,
                params=params,
                json=json_body,
                headers=all_headers,
                timeout=(self.connect_timeout, read_timeout or self.read_timeout),
                allow_redirects=False,
                verify=self.verify,  # per request: REQUESTS_CA_BUNDLE would override Session.verify
            )
        except requests.exceptions.SSLError as exc:
            raise ZStackError(
                CLIENT_TLS,
                details=f"TLS handshake with {self.endpoint} failed: {_short(exc)}",
                endpoint=self.endpoint,
                hint="to trust a private or self-signed certificate pass verify=<path of the CA bundle>",
            ) from None
        except requests.exceptions.Timeout as exc:
            raise _NoAnswer(
                f"no answer within {read_timeout or self.read_timeout:g} s", sent=not _never_sent(exc), timeout=True
            ) from None
        except requests.exceptions.RequestException as exc:
            never_sent = _never_sent(exc)
            reason = "connection refused or unreachable" if never_sent else "connection lost before an answer"
            raise _NoAnswer(f"{reason} ({_short(exc)})", sent=not never_sent) from None
        if resp.status_code in _TRANSIENT_STATUSES and _error_object(resp) is None:
            raise _NoAnswer(
                f"HTTP {resp.status_code} without a ZStack error body (a proxy, or a node that is not ready)",
                sent=True,
                status=resp.status_code,
            )
        return resp

    def _no_answer_error(
        self, exc: _NoAnswer, api: str, request: str, job: _Job | None = None, note: str = ""
    ) -> ZStackError:
        code = CLIENT_TIMEOUT if exc.timeout else CLIENT_UNREACHABLE
        details = f"no usable answer from the management node at {self.endpoint}: {exc.reason}"
        if note:
            details += f"; {note}"
        return ZStackError(
            code,
            details=_redact(details),
            api=api,
            request=_redact(request),
            job_uuid=job.uuid if job else None,
            http_status=exc.status,
            endpoint=self.endpoint,
            hint="check that the management node is up and reachable from here (host, port, firewall)"
            if not exc.timeout
            else None,
        )

    def _answer_error(self, resp: requests.Response, api: str, request: str, job: _Job | None = None) -> ZStackError:
        """The node answered with a failure: its ZStack error (§3.6) or a plain-text HTTP error (§3.7)."""
        error = _error_object(resp)
        if error is not None:
            return ZStackError.from_error_body(
                error,
                api=api,
                request=_redact(request),
                http_status=resp.status_code,
                job_uuid=job.uuid if job else None,
                endpoint=self.endpoint,  # which node answered, when several are configured over time
                auth_kind=self._auth_kind,
            )
        text = _redact(resp.text.strip())[:_ERROR_TEXT_LIMIT] or "(empty body)"
        return ZStackError(
            CLIENT_HTTP,
            details=f"HTTP {resp.status_code}: {text}",
            api=api,
            request=_redact(request),
            http_status=resp.status_code,
            job_uuid=job.uuid if job else None,
            endpoint=self.endpoint,
        )

    def _protocol_error(self, api: str, request: str, details: str, job: _Job | None = None) -> ZStackError:
        return ZStackError(
            CLIENT_PROTOCOL,
            details=details,
            api=api,
            request=_redact(request),
            job_uuid=job.uuid if job else None,
            endpoint=self.endpoint,
        )

    def _json_object(self, resp: requests.Response, api: str, request: str, job: _Job | None = None) -> dict:
        # §3.7: the node may not label its JSON; parse whatever the Content-Type says.
        if not resp.content.strip():
            return {}
        try:
            data = json.loads(resp.content)
        except ValueError:
            raise self._protocol_error(
                api, request, f"HTTP {resp.status_code} with a body that is not JSON: {resp.text[:200]!r}", job
            ) from None
        if not isinstance(data, dict):
            raise self._protocol_error(api, request, f"expected a JSON object, got {type(data).__name__}", job)
        return data

    # --------------------------------------------------------------------------------- sync calls

    def _get(self, path: str, *, api: str, params: Any = None) -> dict:
        """A synchronous GET (§4) with one re-login on ID.1001 (§1.5)."""
        request = f"GET {self._api_path}{path}"
        for attempt in (1, 2):
            sid = self._session()
            try:
                resp = self._send("GET", path, params=params, sid=sid)
            except _NoAnswer as exc:
                raise self._no_answer_error(exc, api, request) from None
            if resp.status_code == 200:
                return self._json_object(resp, api, request)
            err = self._answer_error(resp, api, request)
            if err.code == ID_INVALID_SESSION and attempt == 1 and self._relogin(sid):
                log.info("session expired on %s; logged in again and repeating %s", self.endpoint, api)
                continue
            raise err
        raise AssertionError("unreachable")

    def _inventories(self, path: str, *, api: str, params: Any = None) -> list[dict]:
        data = self._get(path, api=api, params=params)
        inventories = data.get("inventories")
        if not isinstance(inventories, list):
            raise self._protocol_error(api, f"GET {self._api_path}{path}", "the query answer has no 'inventories' list")
        return [i for i in inventories if isinstance(i, dict)]

    def get_version(self) -> str:
        """GetVersion (§9): no authentication; also a cheap check that the node answers."""
        api, request = "GetVersion", f"PUT {self._api_path}/management-nodes/actions"
        try:
            resp = self._send("PUT", "/management-nodes/actions", json_body={"getVersion": {}}, auth=False)
        except _NoAnswer as exc:
            raise self._no_answer_error(exc, api, request) from None
        if resp.status_code != 200:
            raise self._answer_error(resp, api, request)
        return str(self._json_object(resp, api, request).get("version", ""))

    # -------------------------------------------------------------------------------- async calls

    def _call_async(
        self,
        method: str,
        path: str,
        *,
        api: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
        ambiguous_codes: Iterable[str] = (),
        job_uuid: str | None = None,
    ) -> dict:
        """Submit an asynchronous API (§3) and wait for its job. Returns the job's result body.

        Raises ZStackError, or _JobOutcomeUnknown when the result is lost and only the state can tell.
        """
        request = f"{method} {self._api_path}{path}"
        if params:
            request += "?" + "&".join(f"{k}={v}" for k, v in params.items())
        started = time.monotonic()
        limit = self.job_timeout if timeout is None else float(timeout)
        for attempt in (1, 2):
            sid = self._session()
            job = _Job(
                # The caller's UUID once: after ID.1001 it names the refused job, so a fresh one follows.
                uuid=_job_uuid(job_uuid) if job_uuid and attempt == 1 else uuidlib.uuid4().hex,
                api=api,
                request=request,
                started=time.monotonic(),
                deadline=started + limit,
                timeout_source=f"job timeout {limit:g} s",
                keyed=bool(job_uuid) and attempt == 1,
            )
            try:
                return self._run_job(job, method, path, params, json_body, sid, tuple(ambiguous_codes))
            except ZStackError as err:
                # §1.5: an invalid session fails the job in the interceptors, before anything ran.
                if err.code == ID_INVALID_SESSION and attempt == 1 and self._relogin(sid):
                    log.info("session expired on %s; logged in again and resubmitting %s", self.endpoint, api)
                    continue
                raise
        raise AssertionError("unreachable")

    def _submit(self, job: _Job, method: str, path: str, params: Any, json_body: Any, sid: str | None) -> dict | None:
        """Send the call. Returns the result of a synchronous answer, None once the job is accepted.

        Raises _NoAnswer(sent=True) when the answer was lost, ZStackError when the node refused.
        """
        try:
            resp = self._send(
                method, path, params=params, json_body=json_body, headers={"X-Job-UUID": job.uuid}, sid=sid
            )
        except _NoAnswer as exc:
            if not exc.sent:
                raise self._no_answer_error(exc, job.api, job.request, job) from None
            raise
        if resp.status_code == 202:
            data = self._json_object(resp, job.api, job.request, job)
            self._accept(job, data)
            return None
        if resp.status_code in (200, 204):
            return self._json_object(resp, job.api, job.request, job)
        if resp.status_code == 400 and "duplicate job uuid" in resp.text.lower():
            # §3.2: the node refuses a reused X-Job-UUID: the job it names was accepted before.
            job.maybe_old = job.keyed  # a caller-chosen UUID may name an earlier call's job (a crashed process)
            log.info("job %s (%s): the node already has it; waiting for it", job.uuid, job.api)
            job.accepted = True
            return None
        raise self._answer_error(resp, job.api, job.request, job)

    def _accept(self, job: _Job, data: Mapping[str, Any]) -> None:
        job.accepted = True
        location = data.get("location")
        if isinstance(location, str) and "/api-jobs/" in location:
            # §3.3: rewrite onto the configured endpoint (a node behind NAT advertises its inner address).
            advertised = location.split("/api-jobs/", 1)[1].split("?", 1)[0].strip("/")
            if advertised and advertised != job.uuid:
                log.debug("job %s: node assigned job UUID %s", job.uuid, advertised)
                job.uuid = advertised
        api_timeout = data.get("apiTimeout")
        if isinstance(api_timeout, (int, float)) and not isinstance(api_timeout, bool) and api_timeout > 0:
            node_deadline = job.started + api_timeout / 1000.0  # milliseconds (§3.3)
            if node_deadline < job.deadline:
                job.deadline = node_deadline
                job.timeout_source = f"the node's apiTimeout {api_timeout / 1000.0:g} s"
        log.debug("submitted %s as job %s", job.request, job.uuid)

    def _run_job(
        self,
        job: _Job,
        method: str,
        path: str,
        params: Any,
        json_body: Any,
        sid: str | None,
        ambiguous_codes: tuple[str, ...],
    ) -> dict:
        try:
            result = self._submit(job, method, path, params, json_body, sid)
            if result is not None:
                return result
        except _NoAnswer as exc:
            # Lost response: never submit again blindly; ask the node about the job first.
            job.uncertain = True
            job.maybe_old = job.keyed
            log.warning(
                "no answer to %s (%s, job %s): %s; polling the job before anything else",
                job.api,
                job.request,
                job.uuid,
                exc.reason,
            )
        while True:
            remaining = job.deadline - time.monotonic()
            if remaining <= 0:
                details = (
                    f"job {job.uuid} did not finish within {job.timeout_source}; it may still be running on the node"
                )
                if job.last_no_answer is not None:
                    details += (
                        f" ({job.unanswered_polls} polls got no answer from {self.endpoint}, "
                        f"the last: {job.last_no_answer})"
                    )
                raise ZStackError(
                    CLIENT_TIMEOUT,
                    details=_redact(details),
                    api=job.api,
                    request=job.request,
                    job_uuid=job.uuid,
                    endpoint=self.endpoint,
                    hint="read the VM's state before retrying, or raise the job timeout"
                    if job.last_no_answer is None
                    else "check that the management node is up and reachable from here, and read the VM's "
                    "state before retrying",
                )
            time.sleep(min(self.poll_policy.next_delay(time.monotonic() - job.started), remaining))
            try:
                # A hanging poll must not carry the call far past its deadline.
                read_timeout = min(self.read_timeout, max(1.0, job.deadline - time.monotonic()))
                resp = self._send("GET", f"/api-jobs/{_quote(job.uuid)}", sid=sid, read_timeout=read_timeout)
            except _NoAnswer as exc:
                # A poll is a GET, safe to repeat: no answer means "not known yet", not a failed job, until
                # the deadline (issue 3: a gateway blip must not report a failure that did not happen).
                job.unanswered_polls += 1
                job.last_no_answer = exc.reason
                log.warning(
                    "job %s (%s): poll got no answer from %s: %s; polling again until the deadline in %.0f s",
                    job.uuid,
                    job.api,
                    self.endpoint,
                    exc.reason,
                    max(0.0, job.deadline - time.monotonic()),
                )
                continue
            job.polls += 1
            job.last_no_answer = None
            if resp.status_code == 202:  # §3.4: still running
                job.accepted = True
                continue
            if job.maybe_old and (resp.status_code in (200, 503) or (resp.status_code == 404 and job.accepted)):
                # The job may be an earlier call's: whether this call's work is done, only the state can tell.
                raise _JobOutcomeUnknown(job, f"job {job.uuid} may belong to an earlier call and has ended")
            if resp.status_code == 200:
                log.info(
                    "job %s (%s) finished in %.3f s after %d polls",
                    job.uuid,
                    job.api,
                    time.monotonic() - job.started,
                    job.polls,
                )
                return self._json_object(resp, job.api, job.request, job)
            if resp.status_code == 404:  # §3.4: unknown or expired job
                if job.accepted or job.resubmitted:
                    raise _JobOutcomeUnknown(job, "the node no longer knows the job (its record expired)")
                # The lost submit never reached the node, or we cannot tell: submit once more with the
                # same X-Job-UUID; a duplicate is refused (§3.2), so the call cannot run twice.
                job.resubmitted = True
                log.info("job %s (%s) is unknown to the node; submitting it once more", job.uuid, job.api)
                try:
                    result = self._submit(job, method, path, params, json_body, sid)
                    if result is not None:
                        return result
                except _NoAnswer as exc:
                    log.warning("no answer again to %s (job %s): %s", job.api, job.uuid, exc.reason)
                continue
            err = self._answer_error(resp, job.api, job.request, job)
            if err.code == CLIENT_HTTP and job.odd_answers < _ODD_POLL_ANSWERS_TOLERATED:
                # Not a job state at all (§3.4 lists 202/200/503/404): a hiccup, the job is still there.
                job.odd_answers += 1
                log.warning("job %s (%s): poll answered %s; polling again", job.uuid, job.api, err.details)
                continue
            log.info("job %s (%s) failed: %s %s", job.uuid, job.api, err.code, err.details or "")
            if job.uncertain and err.code in ambiguous_codes:
                # After a lost answer a refusal like "already attached" may be our own first submit's work.
                raise _JobOutcomeUnknown(job, f"the job failed with {err.code} after a lost answer", err)
            raise err

    def _lost_error(self, lost: _JobOutcomeUnknown, details: str) -> ZStackError:
        job = lost.job
        return ZStackError(
            CLIENT_JOB_LOST,
            details=f"job {job.uuid}: {lost.reason}; {details}",
            cause=lost.error,
            api=job.api,
            request=job.request,
            job_uuid=job.uuid,
            endpoint=self.endpoint,
            hint="read the VM's state (or run the deployment again, which reads it) before retrying",
        )

    def _settle(
        self,
        lost: _JobOutcomeUnknown,
        vm_uuid: str,
        done: Callable[[VmInstance | None], bool],
        expected: str,
    ) -> VmInstance | None:
        """Decide a job whose result is lost by reading the VM until ``done`` or the settle time ends."""
        job = lost.job
        log.warning("job %s (%s): %s; reading VM %s to settle it", job.uuid, job.api, lost.reason, vm_uuid)
        if lost.error is not None:
            # The job did finish, with this error: only an earlier run could have done the work already.
            vm = self.get_vm(vm_uuid)
            if done(vm):
                log.info("job %s (%s) settled by reading the VM: %s", job.uuid, job.api, expected)
                return vm
            raise lost.error
        start = time.monotonic()
        deadline = min(job.deadline, start + self.settle_timeout)
        while True:
            vm = self.get_vm(vm_uuid)
            if done(vm):
                log.info("job %s (%s) settled by reading the VM: %s", job.uuid, job.api, expected)
                return vm
            delay = _VM_STATE_POLLING.next_delay(time.monotonic() - start)
            if time.monotonic() + delay > deadline:
                seen = "the VM no longer exists" if vm is None else f"VM state {vm.state}"
                raise self._lost_error(
                    lost,
                    f"after reading VM {vm_uuid} for {time.monotonic() - start:.1f} s it is still not the case "
                    f"that {expected} ({seen})",
                )
            time.sleep(delay)

    def _call_settled(
        self,
        method: str,
        path: str,
        *,
        api: str,
        vm_uuid: str,
        done: Callable[[VmInstance | None], bool],
        expected: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
        job_uuid: str | None = None,
    ) -> tuple[dict | None, VmInstance | None]:
        """An async call whose lost result is settled by the VM's state: (result body, None) or
        (None, VM read while settling).

        ``job_uuid`` (32 hex) is an idempotency key: when the node already knows that job (an earlier
        submit of the same call, e.g. by a process that crashed), the client waits for that job instead of
        submitting again, then reads the VM; if the work is not done (the job was an older, unrelated one)
        it submits once with a fresh job UUID.
        """
        key = job_uuid
        while True:
            try:
                body = self._call_async(
                    method,
                    path,
                    api=api,
                    params=params,
                    json_body=json_body,
                    timeout=timeout,
                    ambiguous_codes=(SYS_OPERATION_FAILED,),
                    job_uuid=key,
                )
                return body, None
            except _JobOutcomeUnknown as lost:
                if not lost.reused:
                    return None, self._settle(lost, vm_uuid, done, expected)
                vm = self.get_vm(vm_uuid)
                if done(vm):
                    log.info("job %s (%s): an earlier submit did the work: %s", lost.job.uuid, api, expected)
                    return None, vm
                log.info("job %s (%s) named an older call; submitting with a new job UUID", lost.job.uuid, api)
                key = None

    def _vm_from(self, body: Mapping[str, Any], api: str, request: str) -> VmInstance:
        try:
            return VmInstance.model_validate(body.get("inventory"))
        except ValidationError as exc:
            raise self._protocol_error(api, request, f"the result has no valid VM inventory: {exc}") from None

    # ------------------------------------------------------------------------------------ queries

    def query(
        self,
        resource: str,
        *conditions: str,
        limit: int | None = None,
        start: int | None = None,
        sort: str | None = None,
        fields: Sequence[str] | None = None,
        **equals: Any,
    ) -> list[dict[str, Any]]:
        """A ZStack query (§4.2), e.g. ``query("vm-instances", "state=Running", name="web-1")``.

        ``conditions`` are raw ``q`` strings (``field<op>value``); keyword arguments are equality
        conditions with snake_case names (``media_type="ISO"`` → ``q=mediaType=ISO``; a list means IN,
        None ``is null``). ``sort`` is ``+field`` or ``-field``. Returns the raw inventories.
        """
        resource = resource.strip("/")
        params: list[tuple[str, Any]] = [("q", c) for c in conditions]
        params += [("q", _condition(name, value)) for name, value in equals.items()]
        if limit is not None:
            params.append(("limit", int(limit)))
        if start is not None:
            params.append(("start", int(start)))
        if sort:
            params.append(("sort", sort))
        if fields:
            params.append(("fields", ",".join(fields)))
        api = "Query" + "".join(part.title().replace("-", "") for part in resource.split("/"))
        return self._inventories("/" + "/".join(_quote(p) for p in resource.split("/")), api=api, params=params)

    def _query_as(self, model: type[M], resource: str, conditions: tuple[str, ...], equals: dict) -> list[M]:
        api = f"Query {resource}"
        rows = self.query(resource, *conditions, **equals)
        try:
            return [model.model_validate(row) for row in rows]
        except ValidationError as exc:
            raise self._protocol_error(
                api, f"GET {self._api_path}/{resource}", f"unreadable inventory: {exc}"
            ) from None

    def query_vms(self, *conditions: str, **equals: Any) -> list[VmInstance]:
        """QueryVmInstance (§4.1), e.g. ``query_vms(name="web-1")``."""
        return self._query_as(VmInstance, "vm-instances", conditions, equals)

    def query_images(self, *conditions: str, **equals: Any) -> list[Image]:
        """QueryImage (§4.1, §8), e.g. ``query_images(name="rescue.iso", media_type="ISO")``."""
        return self._query_as(Image, "images", conditions, equals)

    def query_cdroms(self, *conditions: str, **equals: Any) -> list[VmCdRom]:
        """QueryVmCdRom (§4.1), sorted by VM and device id."""
        cdroms = self._query_as(VmCdRom, "vm-instances/cdroms", conditions, equals)
        return sorted(cdroms, key=lambda c: (c.vm_instance_uuid or "", c.device_id or 0, c.uuid))

    def get_vm(self, vm_uuid: str) -> VmInstance | None:
        """The VM, or None when the node has no such VM (§4.1: ``/{uuid}`` answers a possibly empty list).
        A Destroyed VM is still returned (§13)."""
        if not vm_uuid or not vm_uuid.strip():
            return None
        rows = self._inventories(f"/vm-instances/{_quote(vm_uuid)}", api="QueryVmInstance")
        return self._one(VmInstance, rows, vm_uuid, "QueryVmInstance", f"GET {self._api_path}/vm-instances/{vm_uuid}")

    def get_image(self, image_uuid: str) -> Image | None:
        if not image_uuid or not image_uuid.strip():
            return None
        rows = self._inventories(f"/images/{_quote(image_uuid)}", api="QueryImage")
        return self._one(Image, rows, image_uuid, "QueryImage", f"GET {self._api_path}/images/{image_uuid}")

    def get_cdrom(self, cdrom_uuid: str) -> VmCdRom | None:
        if not cdrom_uuid or not cdrom_uuid.strip():
            return None
        rows = self._inventories(f"/vm-instances/cdroms/{_quote(cdrom_uuid)}", api="QueryVmCdRom")
        request = f"GET {self._api_path}/vm-instances/cdroms/{cdrom_uuid}"
        return self._one(VmCdRom, rows, cdrom_uuid, "QueryVmCdRom", request)

    def _one(self, model: type[M], rows: list[dict], uuid: str, api: str, request: str) -> M | None:
        """The row whose UUID is ``uuid`` (compared case-insensitively), or None; ``request`` is for errors."""
        # Only the row with the asked-for UUID: an empty UUID would make "/vm-instances/" list them all.
        wanted = uuid.strip().lower()
        rows = [row for row in rows if str(row.get("uuid", "")).lower() == wanted]
        if not wanted or not rows:
            return None
        try:
            return model.model_validate(rows[0])
        except ValidationError as exc:
            raise self._protocol_error(api, request, f"unreadable inventory: {exc}") from None

    def list_cdroms(self, vm_uuid: str) -> list[VmCdRom]:
        """The VM's CD-ROMs sorted by device id (§7.1), from QueryVmCdRom."""
        return sorted(self.query_cdroms(vmInstanceUuid=vm_uuid), key=lambda c: (c.device_id is None, c.device_id or 0))

    def get_iso_candidates(self, vm_uuid: str) -> list[Image]:
        """GetCandidateIsoForAttachingVm (§4.3): Enabled, Ready ISOs not yet attached to the VM."""
        api = "GetCandidateIsoForAttachingVm"
        rows = self._inventories(f"/vm-instances/{_quote(vm_uuid)}/iso-candidates", api=api)
        return [Image.model_validate(row) for row in rows]

    def wait_for_settled_state(
        self, vm_uuid: str, timeout: float | None = None, *, deadline: float | None = None
    ) -> VmInstance | None:
        """Wait while the VM is in a state that ends by itself (``TRANSITIONAL_VM_STATES``: Starting,
        Stopping, Migrating, Created, …, §13, §5.2 step 4).

        Returns the VM once it is not transitional: ISO-operable (Running, Stopped, Paused), gone
        (Destroyed, Expunging), or a state that needs a person (Unknown, Crashed, one this client does not
        know); None when the VM does not exist. Waits until ``deadline`` (a ``time.monotonic()`` value, so
        that a caller can share one deadline across several steps) or for ``timeout`` seconds, whichever
        ends first; ``job_timeout`` when neither is given. The VM is read at least once, even when the
        deadline has passed. Raises CLIENT.TIMEOUT naming the VM and its state.
        """
        start = time.monotonic()
        ends: list[float] = []
        if timeout is not None:
            if not _finite_number(timeout):
                raise self._config_error(f"timeout must be a finite number of seconds, got {timeout!r}")
            ends.append(start + float(timeout))
        if deadline is not None:
            if not _finite_number(deadline):
                raise self._config_error(f"deadline must be a finite time.monotonic() value, got {deadline!r}")
            ends.append(float(deadline))
        end = min(ends) if ends else start + self.job_timeout
        announced = False
        while True:
            vm = self.get_vm(vm_uuid)
            if vm is None or not vm.is_transitional:
                return vm
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise ZStackError(
                    CLIENT_TIMEOUT,
                    details=f"VM {vm_uuid} was still in state {vm.state} when the wait for it ended after "
                    f"{time.monotonic() - start:.1f} s",
                    api="QueryVmInstance",
                    request=f"GET {self._api_path}/vm-instances/{vm_uuid}",
                    endpoint=self.endpoint,
                    hint="wait until the VM is Running, Stopped or Paused, or raise the timeout",
                )
            if not announced:
                log.info("waiting for VM %s to leave state %s", vm_uuid, vm.state)
                announced = True
            time.sleep(min(_VM_STATE_POLLING.next_delay(time.monotonic() - start), remaining))

    # ------------------------------------------------------------------------------------ ISO jobs

    def attach_iso(
        self,
        vm_uuid: str,
        iso_uuid: str,
        cdrom_uuid: str | None = None,
        *,
        timeout: float | None = None,
        job_uuid: str | None = None,
    ) -> VmInstance:
        """AttachIsoToVmInstance (§5): into ``cdrom_uuid`` or the empty CD-ROM with the lowest device id.

        Returns the VM inventory after the attach. A lost result is settled by reading the VM: the
        attach took effect when the ISO is in one of its CD-ROMs. ``job_uuid`` (see ``stable_job_uuid``)
        makes the call idempotent across processes: if the node already has that job (a crashed process
        submitted the same attach), the client waits for it instead of submitting a second one.
        """
        api = "AttachIsoToVmInstance"
        path = f"/vm-instances/{_quote(vm_uuid)}/iso/{_quote(iso_uuid)}"
        # §5.1: top-level systemTags are read for POST; no body at all is fine too.
        body = {"systemTags": [f"cdromUuid::{cdrom_uuid}"], "userTags": []} if cdrom_uuid else None
        result, vm = self._call_settled(
            "POST",
            path,
            api=api,
            vm_uuid=vm_uuid,
            json_body=body,
            timeout=timeout,
            done=lambda v: v is not None and v.cdrom_with_iso(iso_uuid) is not None,
            expected=f"ISO {iso_uuid} is in a CD-ROM of VM {vm_uuid}",
            job_uuid=job_uuid,
        )
        if result is None:
            assert vm is not None
            return vm
        return self._vm_from(result, api, f"POST {self._api_path}{path}")

    def detach_iso(
        self, vm_uuid: str, iso_uuid: str, *, timeout: float | None = None, job_uuid: str | None = None
    ) -> VmInstance:
        """DetachIsoFromVmInstance (§6): ``isoUuid`` goes in the query string; detaching an ISO that is
        not attached succeeds (§6.2 step 4). A lost result is settled by reading the VM. ``job_uuid``: as
        for ``attach_iso``."""
        api = "DetachIsoFromVmInstance"
        path = f"/vm-instances/{_quote(vm_uuid)}/iso"
        result, vm = self._call_settled(
            "DELETE",
            path,
            api=api,
            vm_uuid=vm_uuid,
            params={"isoUuid": iso_uuid},
            timeout=timeout,
            done=lambda v: v is not None and v.cdrom_with_iso(iso_uuid) is None,
            expected=f"ISO {iso_uuid} is in no CD-ROM of VM {vm_uuid}",
            job_uuid=job_uuid,
        )
        if result is None:
            assert vm is not None
            return vm
        return self._vm_from(result, api, f"DELETE {self._api_path}{path}")

    # ------------------------------------------------------------------------------ VM lifecycle

    def _vm_action(
        self,
        vm_uuid: str,
        action: str,
        params: dict[str, Any],
        done: Callable[[VmInstance | None], bool],
        expected: str,
        timeout: float | None,
    ) -> VmInstance | None:
        api = action[0].upper() + action[1:]
        path = f"/vm-instances/{_quote(vm_uuid)}/actions"
        result, vm = self._call_settled(
            "PUT",
            path,
            api=api,
            vm_uuid=vm_uuid,
            json_body={action: params},
            timeout=timeout,
            done=done,
            expected=expected,
        )
        if result is None:
            return vm
        if result.get("inventory") is None:
            return None
        return self._vm_from(result, api, f"PUT {self._api_path}{path}")

    def start_vm(self, vm_uuid: str, *, timeout: float | None = None) -> VmInstance:
        """StartVmInstance (§13)."""
        vm = self._vm_action(
            vm_uuid, "startVmInstance", {}, lambda v: v is not None and v.state == "Running",
            f"VM {vm_uuid} is Running", timeout,
        )  # fmt: skip
        return vm or self._require_vm(vm_uuid)

    def stop_vm(self, vm_uuid: str, *, stop_type: str = "grace", timeout: float | None = None) -> VmInstance:
        """StopVmInstance (§13); ``stop_type`` is ``grace`` or ``cold``."""
        vm = self._vm_action(
            vm_uuid, "stopVmInstance", {"type": stop_type}, lambda v: v is not None and v.state == "Stopped",
            f"VM {vm_uuid} is Stopped", timeout,
        )  # fmt: skip
        return vm or self._require_vm(vm_uuid)

    def reboot_vm(self, vm_uuid: str, *, timeout: float | None = None) -> VmInstance:
        """RebootVmInstance (§13)."""
        vm = self._vm_action(
            vm_uuid, "rebootVmInstance", {}, lambda v: v is not None and v.state == "Running",
            f"VM {vm_uuid} is Running", timeout,
        )  # fmt: skip
        return vm or self._require_vm(vm_uuid)

    def recover_vm(self, vm_uuid: str, *, timeout: float | None = None) -> VmInstance:
        """RecoverVmInstance (§13): Destroyed → Stopped."""
        vm = self._vm_action(
            vm_uuid, "recoverVmInstance", {}, lambda v: v is not None and v.state == "Stopped",
            f"VM {vm_uuid} is Stopped", timeout,
        )  # fmt: skip
        return vm or self._require_vm(vm_uuid)

    def expunge_vm(self, vm_uuid: str, *, timeout: float | None = None) -> None:
        """ExpungeVmInstance (§13): the VM is gone afterwards."""
        self._vm_action(
            vm_uuid, "expungeVmInstance", {}, lambda v: v is None, f"VM {vm_uuid} no longer exists", timeout
        )

    def destroy_vm(self, vm_uuid: str, *, delete_mode: str = "Permissive", timeout: float | None = None) -> None:
        """DestroyVmInstance (§13): soft delete, the VM stays queryable as Destroyed."""
        self._call_settled(
            "DELETE",
            f"/vm-instances/{_quote(vm_uuid)}",
            api="DestroyVmInstance",
            vm_uuid=vm_uuid,
            params={"deleteMode": delete_mode},
            timeout=timeout,
            done=lambda v: v is None or v.state == "Destroyed",
            expected=f"VM {vm_uuid} is Destroyed",
        )

    def _require_vm(self, vm_uuid: str) -> VmInstance:
        vm = self.get_vm(vm_uuid)
        if vm is None:
            raise self._protocol_error(
                "QueryVmInstance", f"GET {self._api_path}/vm-instances/{vm_uuid}", f"VM {vm_uuid} vanished after a job"
            )
        return vm


def _error_object(resp: requests.Response) -> dict | None:
    """The ``error`` object of a ZStack error body (§3.6), or None."""
    content = resp.content.strip()
    if not content.startswith(b"{"):
        return None
    try:
        data = json.loads(content)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _short(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 exception, without the long wrapping."""
    reason: Any = exc
    for _ in range(5):
        inner = getattr(reason, "reason", None)
        if not isinstance(inner, BaseException):
            inner = reason.args[0] if reason.args and isinstance(reason.args[0], BaseException) else None
        if inner is None or inner is reason:
            break
        reason = inner
    return _redact(str(reason))[:300]
