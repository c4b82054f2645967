"""Where the provider, the lookup helpers and the client find the management node, its credentials and timeouts.

``ZStackSettings`` is the one place that checks them; the client trusts what it holds. They come either from the
stack config (namespace ``zstack``), falling back to the environment variables the ZStack Terraform provider uses
(``load``), or from ``ZStackClient``'s keyword arguments (``of``). Both ways run the same checks; only the words
differ: each message names the setting the way its reader set it. Nothing here is ever written to the Pulumi
state: the provider reads these values in ``configure()``, which runs only inside the provider process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import CLIENT_CONFIG, ZStackError

# One default for each setting, for the provider, the lookups and the client alike.
DEFAULT_PORT = 8080
DEFAULT_CONTEXT_PATH = "/zstack"  # RESTFacade.path (§0 URL base)
DEFAULT_JOB_TIMEOUT = 600.0
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_SETTLE_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
DEFAULT_MAX_CONNECTIONS = 32
# The provider host's thread pool (zstack_iso/host_pool.py): 48 attachments over 16 VMs in VM-major order need
# 48 threads to reach the ideal schedule (benchmark 3, docs/performance.md); idle threads cost little.
DEFAULT_MAX_CONCURRENCY = 64


class ConfigurationError(Exception):
    """The provider's settings are missing, conflicting or malformed."""


@dataclass(frozen=True)
class PollPolicy:
    """How long to wait before the next poll of a job, given the time since it was submitted.

    The adaptive default polls every ``floor`` seconds at first, then every ``ratio`` of the elapsed time,
    at most every ``cap`` seconds: a job's end is seen within 6 % of its duration (or 15 ms), which leaves
    room for round trips inside a budget of max(10 %, 30 ms), and a long job costs one request a second.
    With ``learn``, once the client has seen a few jobs of a kind it skips the polls before such a job could
    end (``client/durations.py``), and follows this schedule from there.
    ``PollPolicy.fixed(1.0)`` is the Java/Python SDK policy, ``PollPolicy.fixed(2.0)`` the Go SDK's (§3.8);
    a fixed interval never learns.
    """

    floor: float = 0.015
    ratio: float = 0.06
    cap: float = 1.0
    learn: bool = True

    def next_delay(self, elapsed: float) -> float:
        return min(self.cap, max(self.floor, self.ratio * elapsed))

    @classmethod
    def fixed(cls, interval: float) -> PollPolicy:
        return cls(floor=interval, ratio=0.0, cap=interval, learn=False)


ADAPTIVE_POLLING = PollPolicy()


@dataclass(frozen=True)
class Setting:
    key: str  # stack config key, in the `zstack` namespace
    env: str  # environment variable fallback
    field: str | None  # the ZStackSettings field, and ZStackClient argument, it sets (host and port: the endpoint)
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("endpoint", "ZSTACK_ENDPOINT", "endpoint", "base URL of the management node; overrides host and port"),
    Setting("host", "ZSTACK_HOST", None, "management node host name or IP"),
    Setting("port", "ZSTACK_PORT", None, f"management node API port (default {DEFAULT_PORT})"),
    Setting("accountName", "ZSTACK_ACCOUNT_NAME", "account_name", "account name"),
    Setting("accountPassword", "ZSTACK_ACCOUNT_PASSWORD", "account_password", "account password (set it as a secret)"),
    Setting("accessKeyId", "ZSTACK_ACCESS_KEY_ID", "access_key_id", "AccessKey ID"),
    Setting(
        "accessKeySecret", "ZSTACK_ACCESS_KEY_SECRET", "access_key_secret", "AccessKey secret (set it as a secret)"
    ),
    Setting(
        "jobTimeout",
        "ZSTACK_JOB_TIMEOUT",
        "job_timeout",
        f"seconds to wait for a job (default {DEFAULT_JOB_TIMEOUT:g})",
    ),
    Setting("tlsVerify", "ZSTACK_TLS_VERIFY", "verify", "true (default), false, or the path of a CA bundle"),
    Setting(
        "pollInterval", "ZSTACK_POLL_INTERVAL", "poll_interval", "fixed seconds between job polls (default: adaptive)"
    ),
    Setting(
        "requestTimeout",
        "ZSTACK_REQUEST_TIMEOUT",
        "read_timeout",
        f"seconds to wait for one HTTP answer before retrying or polling (default {DEFAULT_REQUEST_TIMEOUT:g})",
    ),
    Setting(
        "maxConcurrency",
        "ZSTACK_MAX_CONCURRENCY",
        "max_concurrency",
        f"operations the provider host runs at once (default {DEFAULT_MAX_CONCURRENCY}; the Pulumi SDK's is 4)",
    ),
)
_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class _Words:
    """How messages name the settings: stack config keys for a Pulumi user, arguments for a caller of the client."""

    names: Mapping[str, str]  # field -> the name shown; a field not listed is shown as it is
    example_url: str
    userinfo: str  # {name}, {url}
    both: str  # {given}
    missing: str  # {endpoint}, {missing}, {pair}
    nothing: str  # {endpoint}

    def name(self, field_name: str) -> str:
        return self.names.get(field_name, field_name)


_STACK_CONFIG = _Words(
    names={s.field or s.key: f"zstack:{s.key} / {s.env}" for s in SETTINGS},
    example_url="https://zstack.example.com:8080",
    # Credentials belong in their own (secret) settings; a URL is echoed in messages and logs.
    userinfo="{name} must not contain user:password@ (got {url!r}): set zstack:accountName / zstack:accountPassword "
    "or zstack:accessKeyId / zstack:accessKeySecret instead",
    both="both an account (zstack:accountName/accountPassword) and an AccessKey (zstack:accessKeyId/accessKeySecret) "
    "are configured; they are mutually exclusive: remove one pair from the stack config or the environment",
    missing="incomplete ZStack credentials for {endpoint}: missing {missing}",
    nothing="no ZStack credentials for {endpoint}: set an account with `pulumi config set zstack:accountName admin` "
    "and `pulumi config set --secret zstack:accountPassword ...` (or ZSTACK_ACCOUNT_NAME / ZSTACK_ACCOUNT_PASSWORD), "
    "or an AccessKey with `pulumi config set zstack:accessKeyId ...` and "
    "`pulumi config set --secret zstack:accessKeySecret ...` (or ZSTACK_ACCESS_KEY_ID / ZSTACK_ACCESS_KEY_SECRET)",
)

_ARGUMENTS = _Words(
    names={},
    example_url="http://127.0.0.1:8080",
    userinfo="{name} must not contain credentials; pass account_name/account_password instead",
    both="give exactly one way to authenticate: account_name+account_password, access_key_id+access_key_secret, "
    "or session_uuid (got {given})",
    missing="incomplete credentials: {pair} must both be given",
    nothing="no credentials: give account_name+account_password, access_key_id+access_key_secret, or session_uuid",
)


@dataclass(frozen=True)
class ZStackSettings:
    """Checked connection settings: build them with ``load`` or ``of``, which check every value (the constructor
    checks nothing). Secrets are excluded from repr so they never reach a log line."""

    endpoint: str  # as shown in messages: scheme://host[:port][/context], without /v1
    account_name: str | None = None
    account_password: str | None = field(default=None, repr=False)
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)
    session_uuid: str | None = field(default=None, repr=False)
    verify: bool | str = True
    job_timeout: float = DEFAULT_JOB_TIMEOUT
    poll_policy: PollPolicy = ADAPTIVE_POLLING
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_REQUEST_TIMEOUT
    settle_timeout: float = DEFAULT_SETTLE_TIMEOUT
    retries: int = DEFAULT_RETRIES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    share_session: bool = True
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY  # the provider host's, not the client's

    @property
    def api_url(self) -> str:
        """The API base (§0): the endpoint's context path (``/zstack`` when it names none) and ``/v1``."""
        return self.endpoint + ("" if urlsplit(self.endpoint).path else DEFAULT_CONTEXT_PATH) + "/v1"

    @property
    def auth_kind(self) -> str:
        """``account``, ``access_key`` or ``session``: the one way to authenticate that was given."""
        return "account" if self.account_name else "access_key" if self.access_key_id else "session"

    @classmethod
    def load(cls, get: Callable[[str], str | None], environ: Mapping[str, str] | None = None) -> ZStackSettings:
        """Read every setting from `get(key)` (stack config) first, then from `environ`; raises ConfigurationError."""
        environ = os.environ if environ is None else environ

        def value(key: str) -> str | None:
            raw = get(key)
            if raw is None or raw == "":
                raw = environ.get(_BY_KEY[key].env)
            return raw.strip() if isinstance(raw, str) and raw.strip() else None

        name = _STACK_CONFIG.name
        endpoint = _endpoint(value("endpoint"), value("host"), value("port"))
        job_timeout = _seconds(name("job_timeout"), value("jobTimeout") or DEFAULT_JOB_TIMEOUT)
        verify = _verify(name("verify"), value("tlsVerify"))
        interval = value("pollInterval")  # the stack config holds a fixed interval or nothing
        poll_policy = PollPolicy.fixed(_seconds(name("poll_interval"), interval)) if interval else ADAPTIVE_POLLING
        settings = cls(
            endpoint=endpoint,
            account_name=value("accountName"),
            account_password=value("accountPassword"),
            access_key_id=value("accessKeyId"),
            access_key_secret=value("accessKeySecret"),
            job_timeout=job_timeout,
            verify=verify,
            poll_policy=poll_policy,
            read_timeout=_seconds(name("read_timeout"), value("requestTimeout") or DEFAULT_REQUEST_TIMEOUT),
            max_concurrency=_concurrency(name("max_concurrency"), value("maxConcurrency")),
        )
        _check_credentials(settings, _STACK_CONFIG)  # fail early and clearly on a bad combination
        return settings

    @classmethod
    def of(
        cls,
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
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        share_session: bool = True,
    ) -> ZStackSettings:
        """ZStackClient's keyword arguments, checked; raises ZStackError CLIENT.CONFIG naming the argument.

        ``poll_interval``: None for adaptive polling, seconds for a fixed interval, or a ``PollPolicy``.
        ``settle_timeout``: how long to re-read the VM when a job's own result is lost. ``verify``: True, False
        (with a warning) or the path of a CA bundle file. The README's client table has them all.
        """
        try:
            shown = _base_url("endpoint", endpoint, _ARGUMENTS)
        except ConfigurationError as err:
            raise ZStackError(CLIENT_CONFIG, details=str(err)) from None
        try:
            settings = cls(
                endpoint=shown,
                job_timeout=_seconds("job_timeout", job_timeout),
                connect_timeout=_seconds("connect_timeout", connect_timeout),
                read_timeout=_seconds("read_timeout", read_timeout),
                settle_timeout=_seconds("settle_timeout", settle_timeout, zero=True),
                retries=_count("retries", retries, least=0),
                max_connections=_count("max_connections", max_connections, least=1),
                poll_policy=_poll_policy("poll_interval", poll_interval),
                verify=_verify("verify", verify),
                account_name=account_name,
                account_password=account_password,
                access_key_id=access_key_id,
                access_key_secret=access_key_secret,
                session_uuid=session_uuid,
                share_session=bool(share_session),
            )
            _check_credentials(settings, _ARGUMENTS)
        except ConfigurationError as err:
            raise ZStackError(CLIENT_CONFIG, details=str(err), endpoint=shown) from None
        return settings


# -- the checks --------------------------------------------------------------------------------------------------

_AUTH_FIELDS = {
    "account": ("account_name", "account_password"),
    "access_key": ("access_key_id", "access_key_secret"),
    "session": ("session_uuid",),
}


def _check_credentials(settings: ZStackSettings, words: _Words) -> None:
    """Exactly one way to authenticate, given whole; otherwise a ConfigurationError that says how."""
    values = {name: getattr(settings, name) for names in _AUTH_FIELDS.values() for name in names}
    given = [kind for kind, names in _AUTH_FIELDS.items() if any(values[name] for name in names)]
    if len(given) > 1:
        raise ConfigurationError(words.both.format(given=" and ".join(given)))
    if not given:
        raise ConfigurationError(words.nothing.format(endpoint=settings.endpoint))
    pair = _AUTH_FIELDS[given[0]]
    missing = [name for name in pair if not values[name]]
    if missing:
        raise ConfigurationError(
            words.missing.format(endpoint=settings.endpoint, missing=words.name(missing[0]), pair=" and ".join(pair))
        )


def _endpoint(endpoint: str | None, host: str | None, port: str | None) -> str:
    if endpoint:
        return _base_url(_STACK_CONFIG.name("endpoint"), endpoint, _STACK_CONFIG)
    if not host:
        raise ConfigurationError(
            "no ZStack management node configured: set `pulumi config set zstack:host <host>` "
            "(or ZSTACK_HOST), or zstack:endpoint / ZSTACK_ENDPOINT with a full URL"
        )
    port_number = DEFAULT_PORT
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"{_STACK_CONFIG.name('port')} must be a TCP port number, got {port!r}")
        port_number = int(port)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{port_number}"


def _base_url(name: str, url: object, words: _Words) -> str:
    """The endpoint as messages show it: ``scheme://host[:port][/context]``, without a pasted ``/v1``."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"{name} must be an http(s) URL such as {words.example_url}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = _without_userinfo(url)
        raise ConfigurationError(f"{name} must be an http(s) URL such as {words.example_url}, got {shown!r}")
    if "@" in parts.netloc:
        raise ConfigurationError(words.userinfo.format(name=name, url=_without_userinfo(url)))
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigurationError(f"{name} has an invalid port: {url!r}") from None
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):  # the API base was pasted
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _without_userinfo(url: str) -> str:
    """The URL with any `user:password@` masked: an error message must not echo a credential."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{scheme}{sep}{netloc}{slash}{path}"


def _number(value: object) -> float | None:
    """A number, or the text of one (as stack config gives it); bool is not a number of seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _seconds(name: str, value: object, *, zero: bool = False) -> float:
    """A finite number of seconds above 0 (or 0 as well): nan and inf would disable every deadline."""
    number = _number(value)
    if number is not None and math.isfinite(number) and (number > 0 or (zero and number == 0)):
        return number
    what = "a number of seconds, 0 or more" if zero else "a positive number of seconds"
    raise ConfigurationError(f"{name} must be {what}, got {value!r}")


def _count(name: str, value: object, *, least: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= least:
        return value
    raise ConfigurationError(f"{name} must be a whole number, {least} or more, got {value!r}")


def _concurrency(name: str, raw: str | None) -> int:
    if raw is None:
        return DEFAULT_MAX_CONCURRENCY
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= 1024:
        raise ConfigurationError(f"{name} must be a whole number from 1 to 1024, got {raw!r}")
    return number


def _poll_policy(name: str, value: object) -> PollPolicy:
    """None for adaptive polling, a number of seconds for a fixed interval, or a PollPolicy."""
    if value is None:
        return ADAPTIVE_POLLING
    if isinstance(value, PollPolicy):
        fields = (value.floor, value.ratio, value.cap)
        numbers = all(_number(v) is not None and math.isfinite(v) and v >= 0 for v in fields)
        if numbers and isinstance(value.learn, bool):
            return value
    elif (number := _number(value)) is not None and math.isfinite(number) and number > 0:
        return PollPolicy.fixed(number)
    raise ConfigurationError(f"{name} must be None, a positive number or a PollPolicy, got {value!r}")


def _verify(name: str, value: object) -> bool | str:
    """TLS verification on, off, or the path of a CA bundle file; text may say true/false, 1/0 or yes/no."""
    if value is None or value is True:
        return True
    if value is False:
        return False
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be true, false or the path of a CA bundle file, got {value!r}")
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    if not os.path.isfile(value):
        raise ConfigurationError(f"{name} must be true, false or the path of a CA bundle file; {value!r} is not a file")
    return value
