"""The two exception types: `ZStackError` for a failed ZStack call (with the client-side error codes), and
`IsoAttachmentError` for what the resource tells its users, which names the VM, the ISO and the CD-ROM.

Callers decide on ``ZStackError.code`` (and ``codes``, the whole cause chain), never on ``details``:
a real management node localizes details (§3.6). Errors reported by the node keep ZStack's own codes
(``SYS.1006``, ``ID.1001``, ...); failures the client detects itself use the ``CLIENT.*`` codes below.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import VmInstance

# Client-side codes: the node did not (or could not) answer with a ZStack error of its own.
CLIENT_CONFIG = "CLIENT.CONFIG"
CLIENT_UNREACHABLE = "CLIENT.UNREACHABLE"
CLIENT_TLS = "CLIENT.TLS"
CLIENT_TIMEOUT = "CLIENT.TIMEOUT"
CLIENT_HTTP = "CLIENT.HTTP"
CLIENT_PROTOCOL = "CLIENT.PROTOCOL"
CLIENT_JOB_LOST = "CLIENT.JOB_LOST"

CLIENT_CODES: dict[str, str] = {
    CLIENT_CONFIG: "The ZStack client is not configured correctly",
    CLIENT_UNREACHABLE: "The ZStack management node cannot be reached",
    CLIENT_TLS: "The TLS connection to the ZStack management node failed",
    CLIENT_TIMEOUT: "A ZStack call or job did not finish in time",
    CLIENT_HTTP: "The ZStack management node rejected the request without a ZStack error code",
    CLIENT_PROTOCOL: "The ZStack management node answered something the client does not understand",
    CLIENT_JOB_LOST: "The outcome of a ZStack job is unknown",
}

# ZStack's own codes that callers commonly match on (§3.6, §1.5).
SYS_INTERNAL = "SYS.1000"
SYS_TIMEOUT = "SYS.1001"
SYS_RESOURCE_NOT_FOUND = "SYS.1003"
SYS_OPERATION_FAILED = "SYS.1006"
SYS_INVALID_ARGUMENT = "SYS.1007"
ID_AUTHENTICATION = "ID.1000"
ID_INVALID_SESSION = "ID.1001"
ID_PERMISSION = "ID.1002"
ID_TOO_MANY_SESSIONS = "ID.1006"
VM_WRONG_STATE = "VM.1010"


class ZStackError(Exception):
    """A failed ZStack call: the node's ErrorCode (§3.6) or a client-side ``CLIENT.*`` failure.

    Attributes: ``code``, ``description``, ``details``, ``cause`` (the next ZStackError in ZStack's
    cause chain, or None), ``causes`` (ErrorCodeList members), ``api`` (API name, e.g.
    ``AttachIsoToVmInstance``), ``request`` (method and path, e.g. ``POST /zstack/v1/vm-instances/…``),
    ``http_status``, ``job_uuid``, ``endpoint``, ``hint`` (what to do about it), ``raw`` (the
    error object as the node sent it, or None) and ``vm`` (the VM as the node left it, when the client read it
    to judge what a failed attach or detach did; None otherwise).
    """

    def __init__(
        self,
        code: str,
        description: str | None = None,
        details: str | None = None,
        *,
        cause: ZStackError | None = None,
        causes: list[ZStackError] | None = None,
        api: str | None = None,
        request: str | None = None,
        http_status: int | None = None,
        job_uuid: str | None = None,
        endpoint: str | None = None,
        hint: str | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.description = description if description is not None else CLIENT_CODES.get(code, "")
        self.details = details
        self.cause = cause
        self.causes = list(causes or [])
        self.api = api
        self.request = request
        self.http_status = http_status
        self.job_uuid = job_uuid
        self.endpoint = endpoint
        self.hint = hint
        self.raw = dict(raw) if raw is not None else None
        self.vm: VmInstance | None = None  # set by the client after it read the VM to judge a failed job
        super().__init__(self._message())

    @classmethod
    def from_error_body(
        cls,
        error: Mapping[str, Any],
        *,
        api: str | None = None,
        request: str | None = None,
        http_status: int | None = None,
        job_uuid: str | None = None,
        endpoint: str | None = None,
        auth_kind: str | None = None,
    ) -> ZStackError:
        """Build from a ZStack ErrorCode object (the value of ``{"error": …}``, §3.6).

        ``auth_kind`` (``"account"``, ``"access_key"`` or ``"session"``) picks the hint for codes whose advice
        depends on how the client authenticated (see ``_HINTS``).
        """
        cause = error.get("cause")
        causes = error.get("causes")
        return cls(
            str(error.get("code") or "SYS.1000"),
            _text(error.get("description")),
            _text(error.get("details")),
            cause=cls.from_error_body(cause) if isinstance(cause, Mapping) else None,
            causes=[cls.from_error_body(c) for c in causes if isinstance(c, Mapping)]
            if isinstance(causes, list)
            else None,
            api=api,
            request=request,
            http_status=http_status,
            job_uuid=job_uuid,
            endpoint=endpoint,
            hint=hint_for(str(error.get("code")), auth_kind or "", ""),
            raw=error,
        )

    @property
    def is_client_side(self) -> bool:
        return self.code.startswith("CLIENT.")

    @property
    def codes(self) -> tuple[str, ...]:
        """This error's code followed by every code of its cause chain, e.g. ('SYS.1006', 'VM.1010')."""
        chain: list[str] = []
        err: ZStackError | None = self
        while err is not None:
            chain.append(err.code)
            chain.extend(c.code for c in err.causes)
            err = err.cause
        return tuple(chain)

    def has_code(self, code: str) -> bool:
        return code in self.codes

    def _summary(self) -> str:
        text = self.code
        if self.description:
            text += f" ({self.description})"
        if self.details:
            text += f": {self.details}"
        return text

    def _message(self) -> str:
        text = self._summary()
        where = [self.api, self.request]
        where += [f"job {self.job_uuid}" if self.job_uuid else None]
        where += [f"HTTP {self.http_status}" if self.http_status is not None else None]
        where += [f"endpoint {self.endpoint}" if self.endpoint else None]
        if any(where):
            text += " [" + ", ".join(w for w in where if w) + "]"
        cause = self.cause
        while cause is not None:
            text += f"; caused by {cause._summary()}"
            cause = cause.cause
        for extra in self.causes:
            text += f"; also {extra._summary()}"
        if self.hint:
            text += f". Hint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self._message()

    def __repr__(self) -> str:
        return f"ZStackError(code={self.code!r}, details={self.details!r}, job_uuid={self.job_uuid!r})"

    def __reduce__(self):  # keep the error picklable across processes with all its fields
        return (_rebuild, (self.__dict__.copy(),))


def _rebuild(state: dict[str, Any]) -> ZStackError:
    err = ZStackError.__new__(ZStackError)
    err.__dict__.update(state)
    Exception.__init__(err, err._message())
    return err


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


# What a person can do about a code (§1.5, §3.6, §5.2): the one table of hints, a row a code, a hint a case.
# "" is for any caller of the client; "account" and "access_key" depend on how it authenticates (§1.1, §2);
# "job", "unanswered" and "vm" are the client's own timeouts (a job, a job whose polls went unanswered, a VM's
# transition). "stack" is for whoever configures through the `zstack:` stack config, the provider's users: the
# client's hints name its own arguments, they change stack config instead.
_HINTS: dict[str, dict[str, str]] = {
    ID_AUTHENTICATION: {
        "": "check the credentials the client authenticates with",
        "account": "check the account name and password (the password is sent as its SHA-512 hex)",
        "access_key": "check the AccessKey id and secret, and this machine's clock: the signed Date header must be "
        "within 15 minutes of the management node's time",
        "stack": "check zstack:accountName / zstack:accountPassword (ZSTACK_ACCOUNT_NAME / ZSTACK_ACCOUNT_PASSWORD), "
        "or for an AccessKey zstack:accessKeyId / zstack:accessKeySecret and this machine's clock (the Date header "
        "must be within 15 minutes of the node's)",
    },
    ID_INVALID_SESSION: {
        "": "the session expired or was logged out; give account credentials so the client can log in again, or a "
        "fresh session UUID",
        "stack": "the session expired and logging in again did not help: run the deployment again, and check the "
        "account settings (zstack:accountName / zstack:accountPassword)",
    },
    ID_PERMISSION: {
        "": "the account lacks permission for this operation or resource",
        "stack": "the configured account may not operate this VM or image: use an account that owns them "
        "(zstack:accountName, or the AccessKey's account)",
    },
    ID_TOO_MANY_SESSIONS: {
        "stack": "the account has too many live sessions (a node allows 500): wait for old ones to expire (2 h by "
        "default) or log them out in the console",
    },
    SYS_RESOURCE_NOT_FOUND: {"": "check the UUIDs: the VM, image or CD-ROM does not exist on this node"},
    CLIENT_UNREACHABLE: {"": "check that the management node is up and reachable from here (host, port, firewall)"},
    CLIENT_TLS: {
        "": "to trust a private or self-signed certificate pass verify=<path of the CA bundle>",
        "stack": "set zstack:tlsVerify (or ZSTACK_TLS_VERIFY) to the path of the CA bundle that signed the node's "
        "certificate",
    },
    CLIENT_TIMEOUT: {
        "job": "read the VM's state before retrying, or raise the job timeout",
        "unanswered": "check that the management node is up and reachable from here, and read the VM's state "
        "before retrying",
        "vm": "wait until the VM is Running, Stopped or Paused, or raise the timeout",
        "stack": "the node may still finish the job: run the deployment again once the node answers (it adopts an "
        "attachment that finished meanwhile), or raise zstack:jobTimeout / zstack:requestTimeout",
    },
    CLIENT_JOB_LOST: {"": "read the VM's state (or run the deployment again, which reads it) before retrying"},
}


def hint_for(code: str, *cases: str) -> str | None:
    """What a person can do about ``code``: the hint of the first of ``cases`` that has one (see ``_HINTS``),
    e.g. ``hint_for(code, auth_kind, "")``; None when there is no advice."""
    row = _HINTS.get(code, {})
    return next((row[case] for case in cases if case in row), None)


class IsoAttachmentError(Exception):
    """A failure a user of `IsoAttachment` can act on; the message names the VM, the ISO and the CD-ROM
    concerned, and, when ZStack refused something, ends with ZStack's error (code first) and a hint in terms of
    stack configuration. The Pulumi CLI prints it as `zstack_iso.errors.IsoAttachmentError: <message>`."""

    def __init__(self, message: str, cause: ZStackError | None = None) -> None:
        if cause is not None:
            message = f"{message}: {_for_stack_users(cause)}"
        super().__init__(message)
        self.code = cause.code if cause is not None else None


def _for_stack_users(cause: ZStackError) -> ZStackError:
    hint = hint_for(cause.code, "stack")  # the client's hints name its arguments; stack config is what users set
    if hint is None:
        return cause
    told = copy.copy(cause)  # the caller's error keeps its own hint
    told.hint = hint
    return told
