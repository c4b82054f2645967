"""The HTTP layer: one pooled ``requests`` session, the adapters' retries, and the one place that turns an
answer (or the lack of one) into a ``ZStackError``.

Reads (GET), login, logout and getVersion are retried by urllib3's ``Retry`` on connection errors and on
502/503/504 that carry no ZStack error body; a 503 with ``{"error": …}`` is an answer (§3.6). A write is never
retried here: a submit without an answer is the job protocol's business (``jobs.py``).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from ..config import ZStackSettings
from ..errors import (
    CLIENT_HTTP,
    CLIENT_PROTOCOL,
    CLIENT_TIMEOUT,
    CLIENT_TLS,
    CLIENT_UNREACHABLE,
    ZStackError,
    hint_for,
)

log = logging.getLogger("zstack_iso.client")

TRANSIENT_STATUSES = frozenset({502, 503, 504})
_ERROR_TEXT_LIMIT = 500
_ERROR_KEY = re.compile(rb'"error"\s*:\s*\{')


class NoAnswer(Exception):
    """The node gave no usable answer; ``sent`` says whether the request may have reached it."""

    def __init__(self, reason: str, *, sent: bool, timeout: bool = False, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.timeout = timeout
        self.status = status


class Transport:
    """HTTP to one management node: ``send`` one request, and build the error for what came back."""

    def __init__(self, settings: ZStackSettings) -> None:
        self.endpoint = settings.endpoint
        self.api_url = settings.api_url
        self.api_path = urlsplit(self.api_url).path  # e.g. /zstack/v1, as shown in error messages
        self.connect_timeout = settings.connect_timeout
        self.read_timeout = settings.read_timeout
        self.verify = settings.verify
        self._auth_kind = settings.auth_kind
        if self.verify is False:
            message = (
                f"TLS certificate verification is disabled for {self.endpoint}; "
                "give verify=<CA bundle path> instead to trust a private CA"
            )
            if self.endpoint.startswith("https://"):
                warnings.warn(message, stacklevel=3)
                log.warning(message)
        _install_log_redaction()
        self._http = requests.Session()
        retries = settings.retries
        reads = HTTPAdapter(
            max_retries=_retry(retries, {"GET"}), pool_connections=4, pool_maxsize=settings.max_connections
        )
        # Login, logout and getVersion are synchronous and harmless to repeat (§1.1, §1.3, §9).
        harmless = HTTPAdapter(
            max_retries=_retry(retries, {"GET", "PUT", "DELETE"}), pool_connections=2, pool_maxsize=8
        )
        self._http.mount("http://", reads)
        self._http.mount("https://", reads)
        for path in ("/accounts/login", "/accounts/sessions/", "/management-nodes/actions"):
            self._http.mount(self.api_url + path, harmless)

    def close(self) -> None:
        self._http.close()

    def request_line(self, method: str, path: str) -> str:
        """``GET /zstack/v1/vm-instances/…``: how errors name the request."""
        return f"{method} {self.api_path}{path}"

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """One HTTP exchange (with the adapter's retries). Raises NoAnswer when there is no usable answer."""
        all_headers = {"Accept": "application/json", **(headers or {})}
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
            raise self.error(CLIENT_TLS, f"TLS handshake with {self.endpoint} failed: {_short(exc)}") from None
        except requests.exceptions.Timeout as exc:
            raise NoAnswer(
                f"no answer within {read_timeout or self.read_timeout:g} s", sent=not _never_sent(exc), timeout=True
            ) from None
        except requests.exceptions.RequestException as exc:
            never_sent = _never_sent(exc)
            reason = "connection refused or unreachable" if never_sent else "connection lost before an answer"
            raise NoAnswer(f"{reason} ({_short(exc)})", sent=not never_sent) from None
        if resp.status_code in TRANSIENT_STATUSES and _error_object(resp) is None:
            raise NoAnswer(
                f"HTTP {resp.status_code} without a ZStack error body (a proxy, or a node that is not ready)",
                sent=True,
                status=resp.status_code,
            )
        return resp

    # -- errors: every ZStackError the client raises is built here ----------------------------------------------

    def error(
        self,
        code: str,
        details: str,
        *,
        api: str | None = None,
        request: str | None = None,
        job_uuid: str | None = None,
        http_status: int | None = None,
        hint: str | None = None,
        cause: ZStackError | None = None,
    ) -> ZStackError:
        """A client-side error naming this node, with session UUIDs hidden; the hint defaults to the code's."""
        return ZStackError(
            code,
            details=redact(details),
            cause=cause,
            api=api,
            request=redact(request) if request is not None else None,
            job_uuid=job_uuid,
            http_status=http_status,
            endpoint=self.endpoint,
            hint=hint if hint is not None else hint_for(code, ""),
        )

    def no_answer_error(
        self, exc: NoAnswer, api: str, request: str, job_uuid: str | None = None, note: str = ""
    ) -> ZStackError:
        details = f"no usable answer from the management node at {self.endpoint}: {exc.reason}"
        if note:
            details += f"; {note}"
        code = CLIENT_TIMEOUT if exc.timeout else CLIENT_UNREACHABLE
        return self.error(code, details, api=api, request=request, job_uuid=job_uuid, http_status=exc.status)

    def answer_error(self, resp: requests.Response, api: str, request: str, job_uuid: str | None = None) -> ZStackError:
        """The node answered with a failure: its ZStack error (§3.6) or a plain-text HTTP error (§3.7)."""
        error = _error_object(resp)
        if error is not None:
            return ZStackError.from_error_body(
                error,
                api=api,
                request=redact(request),
                http_status=resp.status_code,
                job_uuid=job_uuid,
                endpoint=self.endpoint,  # which node answered, when several are configured over time
                auth_kind=self._auth_kind,
            )
        text = redact(resp.text.strip())[:_ERROR_TEXT_LIMIT] or "(empty body)"
        details = f"HTTP {resp.status_code}: {text}"
        return self.error(
            CLIENT_HTTP, details, api=api, request=request, job_uuid=job_uuid, http_status=resp.status_code
        )

    def protocol_error(self, api: str, request: str, details: str, job_uuid: str | None = None) -> ZStackError:
        return self.error(CLIENT_PROTOCOL, details, api=api, request=request, job_uuid=job_uuid)

    def json_object(self, resp: requests.Response, api: str, request: str, job_uuid: str | None = None) -> dict:
        """The answer's JSON object; §3.7: the node may not label its JSON, so parse whatever the Content-Type says."""
        if not resp.content.strip():
            return {}
        try:
            data = json.loads(resp.content)
        except ValueError:
            raise self.protocol_error(
                api, request, f"HTTP {resp.status_code} with a body that is not JSON: {resp.text[:200]!r}", job_uuid
            ) from None
        if not isinstance(data, dict):
            raise self.protocol_error(api, request, f"expected a JSON object, got {type(data).__name__}", job_uuid)
        return data


def quote_segment(segment: str) -> str:
    """One path segment, percent-encoded whole (a UUID from a user may hold anything)."""
    return quote(str(segment), safe="")


# -- retries --------------------------------------------------------------------------------------------------------


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
            and response.status in TRANSIENT_STATUSES
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
        status_forcelist=TRANSIENT_STATUSES,
        backoff_factor=0.2,
        backoff_max=2.0,
        raise_on_status=False,
        respect_retry_after_header=False,  # a gateway's Retry-After could stall a call far past its timeout
    )


def _never_sent(exc: requests.exceptions.RequestException) -> bool:
    """Connection refused / connect timeout: the request never reached the node."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, ConnectTimeoutError)  # NewConnectionError is a subclass


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
    return redact(str(reason))[:300]


# -- no session UUID in a log line or a message ---------------------------------------------------------------------

_SESSION_IN_PATH = re.compile(r"(/accounts/sessions/)[^/?\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide session UUIDs that appear in logout/validate paths (§1.3)."""
    return _SESSION_IN_PATH.sub(r"\1<session>", text)


class _RedactSessionFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
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
