"""ZStack's answers of failure (§3.6): the ErrorCode a rule raises, each helper with the code it stands for.

A rule raises `ApiError`; the wire layer renders it ({"error": {...}} with 503, or a job's result). `Answered` is
the other early exit: the node answers the API with success before any queue (successIfResourceNotExisting).
"""

from __future__ import annotations

import re
from typing import Any

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

# PortApiValidator.java:81 @ 5a29293: what an unknown UUID must look like (a dash-less RFC 4122 v1-5 UUID, lower
# case) for an @APIParam(successIfResourceNotExisting=true) field to succeed at once
RESOURCE_UUID_RE = re.compile(r"[0-9a-f]{8}[0-9a-f]{4}[1-5][0-9a-f]{3}[89ab][0-9a-f]{3}[0-9a-f]{12}")
# ApiMessageParamValidator.java:18-21,111-116 @ 5a29293 names itself, not the API, in its errors
PARAM_VALIDATOR = "org.zstack.header.message.ApiMessageParamValidator"


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


def operr(details: str) -> ApiError:
    return ApiError("SYS.1006", details)


def argerr(details: str) -> ApiError:
    return ApiError("SYS.1007", details)


def not_found(field_name: str, uuid_: str, vo_type: str) -> ApiError:
    # §5.2 step 1 (PortApiValidator)
    return ApiError("SYS.1003", f"invalid field[{field_name}], resource[uuid:{uuid_}, type:{vo_type}] not found")


def state_error(state: str, allowed: tuple[str, ...], message: str) -> ApiError:
    # §5.2 step 4: SYS.1006 with cause VM.1010 (AbstractVmInstance.validateOperationByState)
    details = (
        f"current vm instance state[{state}] doesn't allow to proceed message[{message}], "
        f"allowed states are [{', '.join(allowed)}]"
    )
    return ApiError("SYS.1006", details, cause=ApiError("VM.1010", details))


def invalid_value(field_name: str, valid: tuple[str, ...], value: Any) -> ApiError:
    # ApiMessageParamValidator.java:111-116 @ 5a29293 (@APIParam validValues): SYS.1007
    return argerr(
        f"valid value for field[{field_name}] of message[{PARAM_VALIDATOR}] are [{', '.join(valid)}], but {value} found"
    )


def require(value: Any, field_name: str) -> None:
    if value is None:  # ApiMessageParamValidator.java:19-21 @ 5a29293: SYS.1007 naming the validator
        raise argerr(f"field[{field_name}] of message[{PARAM_VALIDATOR}] is mandatory, can not be null")


class Answered(Exception):
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
    raise Answered({})


class DuplicateJobError(Exception):
    """An X-Job-UUID that a POST/PUT/DELETE already used (§3.2)."""
