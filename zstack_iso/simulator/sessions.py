"""Identity (§1, §2): logins, sessions and their timeout, AccessKey signatures, RenewSession."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import SimConfig
from .errors import ApiError, argerr, not_found, require
from .inventory import Inventory
from .jobs import Apply, Job, Jobs
from .records import SESSION_FIELDS, Session, render

MAX_SESSIONS_PER_ACCOUNT = 500  # §1.1 identity.session.maxConcurrent


@dataclass
class Auth:
    """Who is calling: an OAuth session UUID (checked later, in the interceptor) or a verified AccessKey."""

    session_uuid: str | None = None
    access_key_id: str | None = None


class Identity:
    """Accounts and users (from the inventory), the sessions they open, and the AccessKeys that sign requests."""

    def __init__(
        self, lock: threading.RLock, inventory: Inventory, config: SimConfig, jobs: Jobs, save: Callable[[], None]
    ) -> None:
        self._lock = lock
        self._inventory = inventory
        self._config = config
        self._jobs = jobs
        self._save = save
        self.sessions: dict[str, Session] = {}

    @property
    def access_keys(self) -> dict[str, str]:
        """AccessKey id -> secret, for every key of the inventory."""
        with self._lock:
            return {k: v["secret"] for k, v in self._inventory.access_keys.items()}

    @property
    def default_access_key(self) -> tuple[str, str]:
        with self._lock:
            ak = next(iter(self._inventory.access_keys.values()))
            return ak["id"], ak["secret"]

    def check(self, auth: Auth) -> None:
        """§1.4-1.5: ID.1001 for an unknown or expired session; a valid one slides to now + timeout."""
        if auth.access_key_id is not None:
            return
        s = self.sessions.get(auth.session_uuid or "")
        now = time.time()
        if s is None or s.expiredDate < now:
            raise ApiError("ID.1001", "Session expired")
        s.expiredDate = now + self._config.sessionTimeoutSeconds

    # ------------------------------------------------------------------ logins (§1.1, §1.2)

    def _new_session(self, account_uuid: str, user_uuid: str) -> dict[str, Any]:
        now = time.time()
        for uid in [u for u, s in self.sessions.items() if s.expiredDate < now]:
            del self.sessions[uid]
        active = sum(1 for s in self.sessions.values() if s.userUuid == user_uuid)
        if active >= MAX_SESSIONS_PER_ACCOUNT:
            # §1.1 identity.session.maxConcurrent; details wording UNCONFIRMED
            raise ApiError("ID.1006", "Login sessions hit limit of max allowed concurrent login sessions")
        expires = now + self._config.sessionTimeoutSeconds
        session = Session(uuid.uuid4().hex, account_uuid, user_uuid, expiredDate=expires, createDate=now)
        self.sessions[session.uuid] = session
        return render(session, SESSION_FIELDS)

    def login_by_account(self, account_name: str | None, password: str | None) -> dict[str, Any]:
        """§1.1 LogInByAccount: the password is the SHA-512 hex, compared as a string."""
        with self._lock:
            require(account_name, "accountName")
            require(password, "password")
            accounts = self._inventory.accounts.values()
            acct = next((a for a in accounts if a["name"] == account_name), None)
            if acct is None or acct["_passwordSha512"] != password:
                raise ApiError("ID.1000", "wrong account name or password")  # §1.1
            inventory = self._new_session(acct["uuid"], acct["uuid"])
            self._save()
        return {"inventory": inventory}

    def login_by_user(
        self, account_name: str | None, account_uuid: str | None, user_name: str | None, password: str | None
    ) -> dict[str, Any]:
        """§1.2 LogInByUser."""
        with self._lock:
            require(user_name, "userName")
            require(password, "password")
            accounts, users = self._inventory.accounts.values(), self._inventory.users.values()
            acct = next((a for a in accounts if a["uuid"] == account_uuid or a["name"] == account_name), None)
            user = None
            if acct is not None:
                user = next((u for u in users if u["accountUuid"] == acct["uuid"] and u["name"] == user_name), None)
            if user is None or user["_passwordSha512"] != password:
                raise ApiError("ID.1000", "wrong account or username or password")  # §1.2
            inventory = self._new_session(acct["uuid"], user["uuid"])
            self._save()
        return {"inventory": inventory}

    def authenticate_access_key(self, key_id: str, signature: str, method: str, date: str, uri: str) -> Auth:
        """§2: HMAC-SHA1(secret, METHOD\\nDate\\n/v1/path) in base64, as the three SDKs sign.

        UNCONFIRMED (closed source): the verifier's error; the simulator answers ID.1000 with the wording the Go
        SDK looks for ("access key id", "wrong accessKey signature").
        """
        with self._lock:
            ak = self._inventory.access_keys.get(key_id)
            if ak is None:
                raise ApiError("ID.1000", f"invalid access key id[{key_id}]")
            secret = ak["secret"]
        expected = base64.b64encode(
            hmac.new(secret.encode(), f"{method}\n{date}\n{uri}".encode(), hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise ApiError("ID.1000", "wrong accessKey signature")
        return Auth(access_key_id=key_id)

    # ------------------------------------------------------------------ sessions (§1.3)

    def logout(self, session_uuid: str) -> dict[str, Any]:
        """§1.3: unknown sessions are a silent no-op; 200 {}."""
        with self._lock:
            if self.sessions.pop(session_uuid, None) is not None:
                self._save()
        return {}

    def validate_session(self, session_uuid: str) -> dict[str, Any]:
        """§1.3 ValidateSession: never an error, never renews."""
        with self._lock:
            s = self.sessions.get(session_uuid)
            return {"valid": bool(s and s.expiredDate >= time.time())}

    def renew_session(self, job: Job, auth: Auth, session_uuid: str, duration: int | None) -> None:
        """§1.3 RenewSession (async, auth required)."""

        def intercept() -> tuple[str, None]:
            # the parameter validator (SYSTEM) runs before the session check (FRONT), §1.5
            if duration is not None and not 60 <= duration <= 31536000:
                # ApiMessageParamValidator.java:92-107 @ 5a29293 (numberRange): SYS.1007
                raise argerr("field[duration] must be in range of [60, 31536000]")
            if session_uuid not in self.sessions:
                raise not_found("sessionUuid", session_uuid, "SessionVO")  # SYS.1003
            self.check(auth)  # ID.1001
            return f"session:{session_uuid}", None

        def queued(_: None) -> Apply:
            def apply() -> dict[str, Any]:
                s = self.sessions.get(session_uuid)
                if s is None:
                    raise not_found("sessionUuid", session_uuid, "SessionVO")
                s.expiredDate = time.time() + (duration or self._config.sessionTimeoutSeconds)
                return {"inventory": render(s, SESSION_FIELDS)}

            return apply

        self._jobs.submit(job, intercept, queued)

    def expire_all(self) -> int:
        """The control API's sessions/expire: every session expires now."""
        with self._lock:
            past = time.time() - 1
            for s in self.sessions.values():
                s.expiredDate = min(s.expiredDate, past)
            count = len(self.sessions)
            self._save()
        return count
