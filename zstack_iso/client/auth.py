"""Who the client is to the node (§1, §2): an account, whose session the whole process shares; an AccessKey,
which signs every request and needs no session; or a session UUID the caller got elsewhere.

Account sessions live in a process-wide cache, so that a process logs in once per endpoint and account; on
``ID.1001`` one thread logs in again and the call is repeated once (§1.5). Nothing here logs a password, its
hash, an AccessKey secret or a session UUID.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from pydantic import ValidationError

from ..config import ZStackSettings
from ..errors import CLIENT_CONFIG, ID_INVALID_SESSION, ZStackError
from ..models import Session
from .transport import NoAnswer, Transport, quote_segment, redact

log = logging.getLogger("zstack_iso.client")

T = TypeVar("T")


class Account:
    """An account login (§1.1). The password is kept only as its SHA-512 hex, the form the node accepts."""

    def __init__(self, name: str, password: str) -> None:
        self.name = name
        self._password_sha512 = hashlib.sha512(password.encode("utf-8")).hexdigest()

    def login_body(self) -> dict:
        return {"logInByAccount": {"accountName": self.name, "password": self._password_sha512}}

    def cache_key(self, api_url: str) -> tuple[str, str, str]:
        """(endpoint, account, SHA-256 of the SHA-512 hex): never the password or the hash the node accepts."""
        return (api_url, self.name, hashlib.sha256(self._password_sha512.encode()).hexdigest())

    def __repr__(self) -> str:
        return f"account {self.name!r}"


class AccessKey:
    """AccessKey signing (§2): every request carries a Date header and an HMAC-SHA1 signature, no session."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self._secret = secret

    def headers(self, method: str, path: str) -> dict[str, str]:
        date = http_date()
        signature = access_key_signature(self._secret, method, date, "/v1" + path)
        return {"Date": date, "Authorization": f"ZStack {self.key_id}:{signature}"}

    def __repr__(self) -> str:
        return f"AccessKey {self.key_id!r}"


class Auth:
    """The client's identity: the headers of every request, and the session when there is one."""

    def __init__(self, settings: ZStackSettings, transport: Transport) -> None:
        self._transport = transport
        self.kind = settings.auth_kind
        self.account: Account | None = None
        self.access_key: AccessKey | None = None
        self._given_session = settings.session_uuid
        self._entry: _CachedSession | None = None
        self._closed = False
        if self.kind == "account":
            assert settings.account_name is not None and settings.account_password is not None
            self.account = Account(settings.account_name, settings.account_password)
            key = self.account.cache_key(transport.api_url)
            self._entry = _SESSIONS.acquire(key) if settings.share_session else _CachedSession()
        elif self.kind == "access_key":
            assert settings.access_key_id is not None and settings.access_key_secret is not None
            self.access_key = AccessKey(settings.access_key_id, settings.access_key_secret)

    def __repr__(self) -> str:
        who = self.account or self.access_key
        return repr(who) if who is not None else "a given session"

    def headers(self, method: str, path: str, sid: str | None) -> dict[str, str]:
        if self.access_key is not None:
            return self.access_key.headers(method, path)
        return {} if sid is None else {"Authorization": f"OAuth {sid}"}  # §1.4

    def session(self) -> str | None:
        """The session to send (logging in on first use), or None for an AccessKey."""
        if self._closed:
            raise self._transport.error(CLIENT_CONFIG, "this ZStackClient was closed")
        if self._entry is not None:
            return self._entry.get(self._login)
        return self._given_session

    def run(self, call: Callable[[str | None, bool], T], *, api: str, again: str) -> T:
        """``call(sid, first)`` with the session; on ID.1001 log in again (once per stale session, whichever
        thread gets there first) and call once more (§1.5). ``again`` names the repeat in the log."""
        for first in (True, False):
            sid = self.session()
            try:
                return call(sid, first)
            except ZStackError as err:
                if err.code == ID_INVALID_SESSION and first and self._renew(sid):
                    log.info("session expired on %s; logged in again and %s %s", self._transport.endpoint, again, api)
                    continue
                raise
        raise AssertionError("unreachable")

    def login(self) -> Session:
        """LogInByAccount (§1.1): a new session, owned by the caller (who logs it out).

        The client's own calls do not need it: they log in on first use with the shared session.
        """
        if self.account is None:
            raise self._transport.error(CLIENT_CONFIG, "login() needs account_name and account_password")
        transport = self._transport
        api, request = "LogInByAccount", transport.request_line("PUT", "/accounts/login")
        try:
            resp = transport.send("PUT", "/accounts/login", json_body=self.account.login_body())
        except NoAnswer as exc:
            raise transport.no_answer_error(exc, api, request) from None
        if resp.status_code != 200:
            raise transport.answer_error(resp, api, request)
        data = transport.json_object(resp, api, request)
        try:
            session = Session.model_validate(data.get("inventory") or {})
        except ValidationError as exc:
            raise transport.protocol_error(api, request, "the login answer has no session inventory") from exc
        log.info("logged in to %s as account %s", transport.endpoint, self.account.name)
        return session

    def close(self, *, logout: bool) -> None:
        """Stop using the session; log it out when this was its last client and ``logout`` is set."""
        self._closed = True
        if self._entry is not None and _SESSIONS.release(self._entry) and logout:
            sid = self._entry.take()
            if sid is not None:
                self._logout(sid)

    def _login(self) -> str:
        return self.login().uuid

    def _renew(self, stale: str | None) -> bool:
        """Log in again unless another thread already replaced the stale session; True when it was replaced."""
        if self._entry is None:
            return False
        return self._entry.renew(stale, self._login) != stale

    def _logout(self, sid: str) -> None:
        try:
            self._transport.send("DELETE", f"/accounts/sessions/{quote_segment(sid)}")
            log.info("logged out of %s (account %s)", self._transport.endpoint, self.account and self.account.name)
        except (NoAnswer, ZStackError) as exc:  # closing must not fail: the session expires anyway (§1.4)
            log.debug("logout from %s failed: %s", self._transport.endpoint, redact(str(exc)))


# -- signing (§2) ---------------------------------------------------------------------------------------------------

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


# -- the process-wide session cache ---------------------------------------------------------------------------------


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
    """Process-wide sessions keyed by ``Account.cache_key``."""

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
