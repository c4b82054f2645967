"""Where the provider and the lookup helpers find the management node and its credentials.

Settings come from the stack config (namespace ``zstack``) and fall back to the environment variables the
ZStack Terraform provider uses. Nothing here is ever written to the Pulumi state: the provider reads these
values in ``configure()``, which runs only inside the provider process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORT = 8080
DEFAULT_JOB_TIMEOUT = 600.0
DEFAULT_REQUEST_TIMEOUT = 30.0
# The provider host's thread pool (zstack_iso/host_pool.py): 48 attachments over 16 VMs in VM-major order need
# 48 threads to reach the ideal schedule (benchmark 3, docs/performance.md); idle threads cost little.
DEFAULT_MAX_CONCURRENCY = 64


class ConfigurationError(Exception):
    """The provider's settings are missing, conflicting or malformed."""


@dataclass(frozen=True)
class Setting:
    key: str  # stack config key, in the `zstack` namespace
    env: str  # environment variable fallback
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("endpoint", "ZSTACK_ENDPOINT", "base URL of the management node; overrides host and port"),
    Setting("host", "ZSTACK_HOST", "management node host name or IP"),
    Setting("port", "ZSTACK_PORT", f"management node API port (default {DEFAULT_PORT})"),
    Setting("accountName", "ZSTACK_ACCOUNT_NAME", "account name"),
    Setting("accountPassword", "ZSTACK_ACCOUNT_PASSWORD", "account password (set it as a secret)"),
    Setting("accessKeyId", "ZSTACK_ACCESS_KEY_ID", "AccessKey ID"),
    Setting("accessKeySecret", "ZSTACK_ACCESS_KEY_SECRET", "AccessKey secret (set it as a secret)"),
    Setting("jobTimeout", "ZSTACK_JOB_TIMEOUT", f"seconds to wait for a job (default {DEFAULT_JOB_TIMEOUT:g})"),
    Setting("tlsVerify", "ZSTACK_TLS_VERIFY", "true (default), false, or the path of a CA bundle"),
    Setting("pollInterval", "ZSTACK_POLL_INTERVAL", "fixed seconds between job polls (default: adaptive)"),
    Setting(
        "requestTimeout",
        "ZSTACK_REQUEST_TIMEOUT",
        f"seconds to wait for one HTTP answer before retrying or polling (default {DEFAULT_REQUEST_TIMEOUT:g})",
    ),
    Setting(
        "maxConcurrency",
        "ZSTACK_MAX_CONCURRENCY",
        f"operations the provider host runs at once (default {DEFAULT_MAX_CONCURRENCY}; the Pulumi SDK's is 4)",
    ),
)
_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class ZStackSettings:
    """Connection settings; secrets are excluded from repr so they never reach a log line."""

    endpoint: str
    account_name: str | None = None
    account_password: str | None = field(default=None, repr=False)
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)
    job_timeout: float = DEFAULT_JOB_TIMEOUT
    verify: bool | str = True
    poll_interval: float | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY

    @classmethod
    def load(cls, get: Callable[[str], str | None], environ: Mapping[str, str] | None = None) -> ZStackSettings:
        """Read every setting from `get(key)` (stack config) first, then from `environ`."""
        environ = os.environ if environ is None else environ

        def value(key: str) -> str | None:
            raw = get(key)
            if raw is None or raw == "":
                raw = environ.get(_BY_KEY[key].env)
            return raw.strip() if isinstance(raw, str) and raw.strip() else None

        endpoint = _endpoint(value("endpoint"), value("host"), value("port"))
        settings = cls(
            endpoint=endpoint,
            account_name=value("accountName"),
            account_password=value("accountPassword"),
            access_key_id=value("accessKeyId"),
            access_key_secret=value("accessKeySecret"),
            job_timeout=_positive_float("jobTimeout", value("jobTimeout"), DEFAULT_JOB_TIMEOUT),
            verify=_verify(value("tlsVerify")),
            poll_interval=_positive_float("pollInterval", value("pollInterval"), None),
            request_timeout=_positive_float("requestTimeout", value("requestTimeout"), DEFAULT_REQUEST_TIMEOUT),
            max_concurrency=_positive_int("maxConcurrency", value("maxConcurrency"), DEFAULT_MAX_CONCURRENCY),
        )
        settings.credentials()  # fail early and clearly on a bad combination
        return settings

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for `ZStackClient(**options)`, credentials included."""
        return {
            "endpoint": self.endpoint,
            "verify": self.verify,
            "job_timeout": self.job_timeout,
            "poll_interval": self.poll_interval,
            "read_timeout": self.request_timeout,
            **self.credentials(),
        }

    def credentials(self) -> dict[str, str]:
        """The keyword arguments for ZStackClient's authentication, or a ConfigurationError that says how."""
        account = (self.account_name, self.account_password)
        access_key = (self.access_key_id, self.access_key_secret)
        if any(account) and any(access_key):
            raise ConfigurationError(
                "both an account (zstack:accountName/accountPassword) and an AccessKey "
                "(zstack:accessKeyId/accessKeySecret) are configured; they are mutually exclusive: "
                "remove one pair from the stack config or the environment"
            )
        if all(account):
            return {"account_name": self.account_name, "account_password": self.account_password}
        if all(access_key):
            return {"access_key_id": self.access_key_id, "access_key_secret": self.access_key_secret}
        for keys, values in (
            (("accountName", "accountPassword"), account),
            (("accessKeyId", "accessKeySecret"), access_key),
        ):
            if any(values):
                missing = [f"zstack:{k} / {_BY_KEY[k].env}" for k, v in zip(keys, values, strict=True) if not v]
                raise ConfigurationError(f"incomplete ZStack credentials for {self.endpoint}: missing {missing[0]}")
        raise ConfigurationError(
            f"no ZStack credentials for {self.endpoint}: set an account with "
            "`pulumi config set zstack:accountName admin` and "
            "`pulumi config set --secret zstack:accountPassword ...` "
            "(or ZSTACK_ACCOUNT_NAME / ZSTACK_ACCOUNT_PASSWORD), or an AccessKey with "
            "`pulumi config set zstack:accessKeyId ...` and "
            "`pulumi config set --secret zstack:accessKeySecret ...` "
            "(or ZSTACK_ACCESS_KEY_ID / ZSTACK_ACCESS_KEY_SECRET)"
        )


def _endpoint(endpoint: str | None, host: str | None, port: str | None) -> str:
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"zstack:endpoint / ZSTACK_ENDPOINT must be an http(s) URL such as "
                f"https://zstack.example.com:8080, got {_without_userinfo(endpoint)!r}"
            )
        if "@" in parts.netloc:
            # Credentials belong in their own (secret) settings; a URL is echoed in messages and logs.
            raise ConfigurationError(
                f"zstack:endpoint / ZSTACK_ENDPOINT must not contain user:password@ "
                f"(got {_without_userinfo(endpoint)!r}): set zstack:accountName / zstack:accountPassword "
                "or zstack:accessKeyId / zstack:accessKeySecret instead"
            )
        return endpoint.rstrip("/")
    if not host:
        raise ConfigurationError(
            "no ZStack management node configured: set `pulumi config set zstack:host <host>` "
            "(or ZSTACK_HOST), or zstack:endpoint / ZSTACK_ENDPOINT with a full URL"
        )
    port_number = DEFAULT_PORT
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"zstack:port / ZSTACK_PORT must be a TCP port number, got {port!r}")
        port_number = int(port)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{port_number}"


def _without_userinfo(url: str) -> str:
    """The URL with any `user:password@` masked: an error message must not echo a credential."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{scheme}{sep}{netloc}{slash}{path}"


def _positive_float(key: str, raw: str | None, default: float | None) -> float | None:
    if raw is None:
        return default
    try:
        number = float(raw)
    except ValueError:
        number = -1.0
    if not math.isfinite(number) or number <= 0:  # nan and inf would disable every deadline
        setting = _BY_KEY[key]
        raise ConfigurationError(f"zstack:{key} / {setting.env} must be a positive number of seconds, got {raw!r}")
    return number


def _positive_int(key: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= 1024:
        setting = _BY_KEY[key]
        raise ConfigurationError(f"zstack:{key} / {setting.env} must be a whole number from 1 to 1024, got {raw!r}")
    return number


def _verify(raw: str | None) -> bool | str:
    if raw is None or raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    if not os.path.isfile(raw):
        raise ConfigurationError(
            f"zstack:tlsVerify / ZSTACK_TLS_VERIFY must be true, false or the path of a CA bundle file; "
            f"{raw!r} is not a file"
        )
    return raw
