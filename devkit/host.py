"""Drive a Pulumi dynamic provider exactly as the engine does, without the Pulumi CLI.

Three layers, each usable alone (shared/pulumi-dynamic.md §3.5 and §4):

* `ProviderHost`: the SDK's own provider host, `python -u -m pulumi.dynamic`, started as the CLI's
  `pulumi-resource-pulumi-python` starts it (cwd = project root, env + PULUMI_PROJECT), spoken to over gRPC
  with plain dicts in and out.
* `Engine`: a small stand-in for the deployment engine on top of a host: stack state, preview, up (with
  same/update/replace and delete-before-replace), refresh, destroy, independent resources in parallel.
* `run_program`: runs a Pulumi program file under `pulumi.runtime.set_mocks`, recording every registration,
  so its captured `__provider` can be replayed into a host.

Example::

    from tests.engine import Engine, ProviderHost, UNKNOWN

    with ProviderHost(MyProvider(), config={"zstack:host": "127.0.0.1"}, remove_env=["ZSTACK_*"]) as host:
        inputs, failures = host.check({}, {"vm_uuid": UNKNOWN})      # a preview
        id_, outs = host.create(host.check({}, {"vm_uuid": vm})[0])
        engine = Engine(host, type_="pulumi-python:dynamic/zstack:IsoAttachment")
        result = engine.up({"a": {"vm_uuid": vm, "iso_uuid": iso}})
        assert result.kinds == {"a": "create"}

Every host method is safe to call from many threads at once (a gRPC stub is thread-safe); the SDK host
serves at most 4 calls at a time and queues the rest. `run_concurrently` starts calls together.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import fnmatch
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pulumi
import pulumi.dynamic
import pulumi.runtime
from google.protobuf import empty_pb2, struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime._serialization import _serialize
from pulumi.runtime.config import set_all_config
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc
from pulumi.runtime.stack import run_in_stack

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the repository root
PROVIDER_KEY = "__provider"
# The wire form of a value computed during a preview (pulumi.runtime.rpc.UNKNOWN); decoded values are
# `pulumi.output.Unknown` instances instead: test either with `is_unknown`.
UNKNOWN: str = rpc.UNKNOWN
DEFAULT_TYPE = "pulumi-python:dynamic:Resource"
DEFAULT_STACK = "dev"
DEFAULT_TIMEOUT = 60.0

__all__ = [
    "DEFAULT_TYPE",
    "PROJECT_ROOT",
    "PROVIDER_KEY",
    "UNKNOWN",
    "CheckFailed",
    "DiffOutcome",
    "Engine",
    "HostStartError",
    "ProgramRun",
    "ProviderError",
    "ProviderHost",
    "RecordingMocks",
    "Registration",
    "ResourceState",
    "RunResult",
    "StepResult",
    "decode_provider",
    "is_unknown",
    "project_name",
    "run_concurrently",
    "run_program",
    "serialize_provider",
    "without_provider",
]


# ---------------------------------------------------------------------------------------------------------
# Serialization and values


def serialize_provider(provider: pulumi.dynamic.ResourceProvider) -> str:
    """The `__provider` string exactly as `pulumi.dynamic.Resource.__init__` builds it (dill, base64)."""
    # Private SDK API (pinned pulumi version): secret Outputs may be captured, as in Resource.__init__.
    return _serialize(True, pulumi.dynamic.dynamic.serialize_provider, provider)[0]


def decode_provider(serialized: str) -> bytes:
    """The raw pickle bytes behind a `__provider` string (grep them for credentials)."""
    return base64.b64decode(serialized)


def is_unknown(value: Any) -> bool:
    """True for a preview unknown, on the wire (`UNKNOWN`) or decoded (`pulumi.output.Unknown`)."""
    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


def without_provider(props: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a property dict without `__provider`, for readable assertions."""
    return {k: v for k, v in (props or {}).items() if k != PROVIDER_KEY}


def project_name(directory: str | os.PathLike[str] = PROJECT_ROOT) -> str:
    """The `name:` of the Pulumi.yaml in directory, else the directory's name."""
    path = Path(directory) / "Pulumi.yaml"
    if path.exists():
        match = re.search(r"^name:\s*['\"]?([^'\"\s#]+)", path.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return Path(directory).resolve().name


def _plain(value: Any) -> Any:
    """What the engine puts on the wire to a dynamic provider: unknowns as UNKNOWN, secrets unwrapped."""
    # The dynamic host answers acceptSecrets=False, so the engine sends secret values in the clear.
    if rpc.is_rpc_secret(value):
        value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _to_struct(props: Mapping[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if props:
        struct.update(_plain(props))
    return struct


def _from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return rpc.deserialize_properties(struct, keep_unknowns=True)


# ---------------------------------------------------------------------------------------------------------
# Errors and results


class HostStartError(RuntimeError):
    """The provider host did not print its port or did not become ready; carries its stderr."""


class ProviderError(Exception):
    """A gRPC call to the provider host failed.

    `code` is the grpc.StatusCode (UNKNOWN for an exception in a provider method, UNAVAILABLE for a dead host,
    DEADLINE_EXCEEDED for a timeout), `details` the full text (the traceback for a provider exception), and
    `message` its last line, e.g. "RuntimeError: VM ... has no empty CD-ROM" (what a user reads first).
    """

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        self.method = method
        self.code = code
        self.details = details or ""
        lines = [line for line in self.details.strip().splitlines() if line.strip()]
        self.message = lines[-1].strip() if lines else ""
        super().__init__(f"{method} failed ({code.name}): {self.message}")


class CheckFailed(Exception):
    """Check returned failures; the engine reports them and does not go on to Create/Diff."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        super().__init__("; ".join(f"{prop}: {reason}" for prop, reason in failures))


@dataclass(frozen=True)
class DiffOutcome:
    """A DiffResponse as the engine reads it."""

    changes: str  # "none" | "some" | "unknown"
    replaces: list[str] = field(default_factory=list)
    delete_before_replace: bool = False

    @property
    def replace(self) -> bool:
        # The engine replaces exactly when replace keys are reported.
        return bool(self.replaces)


_CHANGES = {
    provider_pb2.DiffResponse.DIFF_NONE: "none",
    provider_pb2.DiffResponse.DIFF_SOME: "some",
    provider_pb2.DiffResponse.DIFF_UNKNOWN: "unknown",
}


# ---------------------------------------------------------------------------------------------------------
# The provider host


class ProviderHost:
    """`python -u -m pulumi.dynamic` in a subprocess, driven over gRPC with plain dicts.

    `provider`: a ResourceProvider instance (serialized like `dynamic.Resource` does), a ready `__provider`
    string, or None (then every property dict must carry `__provider` itself). It is added to every non-empty
    property dict that lacks it; empty dicts go as they are, because the engine sends empty `olds` to Check
    on create and empty properties to Read on import.

    `config` is sent as the Configure call right after start (the engine always configures first; the host
    configures a provider once, when it first unpickles it, so later Configure calls do not reach a provider
    already loaded). `env` adds variables, `remove_env` removes outer ones by name or glob ("ZSTACK_*").
    `timeout` bounds every gRPC call (override per call with `timeout=`). `python` and `module` name the
    interpreter and the module run with `-m` (the CLI's shim always runs `pulumi.dynamic`; change them only to
    measure an alternative launcher). `startup_seconds` is the time from spawn to a ready channel.
    """

    def __init__(
        self,
        provider: pulumi.dynamic.ResourceProvider | str | None = None,
        *,
        config: Mapping[str, str] | None = None,
        secret_keys: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        remove_env: Iterable[str] = (),
        project: str | None = None,
        stack: str = DEFAULT_STACK,
        cwd: str | os.PathLike[str] = PROJECT_ROOT,
        timeout: float = DEFAULT_TIMEOUT,
        start_timeout: float = 30.0,
        python: str = sys.executable,
        module: str = "pulumi.dynamic",
    ) -> None:
        if provider is None or isinstance(provider, str):
            self.provider_string: str | None = provider
        else:
            self.provider_string = serialize_provider(provider)
        self.cwd = Path(cwd)
        self.project = project or project_name(self.cwd)
        self.stack = stack
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.python = python
        self.module = module
        self._extra_env = dict(env or {})
        self._remove_env = list(remove_env)
        self._config = dict(config) if config is not None else None
        self._secret_keys = list(secret_keys)
        self._lines_lock = threading.Lock()
        self._stderr: list[str] = []
        self._stdout: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._stub: provider_pb2_grpc.ResourceProviderStub | None = None
        self._threads: list[threading.Thread] = []
        self.port: int | None = None
        self.startup_seconds: float | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> ProviderHost:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """The environment the host process gets: ours, minus `remove_env`, plus PULUMI_PROJECT and `env`."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not any(fnmatch.fnmatchcase(k, pattern) for pattern in self._remove_env)
        }
        env["PULUMI_PROJECT"] = self.project
        env.update(self._extra_env)
        return env

    def start(self) -> ProviderHost:
        """Start the process, read its port, connect, and send Configure if `config` was given."""
        if self._process is not None:
            raise RuntimeError("provider host already started")
        began = time.perf_counter()
        # The address argument is what the CLI passes (the engine's); the SDK host ignores it (§3.2).
        self._process = subprocess.Popen(
            [self.python, "-u", "-m", self.module, "127.0.0.1:0"],
            cwd=self.cwd,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._drain(self._process.stderr, self._stderr, "stderr")
        self.port = self._read_port()
        self._drain(self._process.stdout, self._stdout, "stdout")
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=_GRPC_CHANNEL_OPTIONS)
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self.start_timeout)
        except grpc.FutureTimeoutError as exc:
            self.stop()
            raise HostStartError(f"provider host not ready on port {self.port}:\n{self.stderr_text()}") from exc
        self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        self.startup_seconds = time.perf_counter() - began
        if self._config is not None:
            try:
                self.configure(self._config, secret_keys=self._secret_keys)
            except BaseException:
                self.stop()
                raise
        return self

    def _read_port(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        box: list[bytes] = []
        reader = threading.Thread(target=lambda: box.append(self._process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        line = box[0].decode().strip() if box else ""
        if not line.isdigit():
            self.kill()
            for thread in self._threads:
                thread.join(2)
            self._threads, self._process = [], None
            raise HostStartError(f"provider host printed no port (got {line!r}):\n{self.stderr_text()}")
        return int(line)

    def _drain(self, pipe: Any, sink: list[str], name: str) -> None:
        # Draining both pipes keeps a chatty provider from blocking on a full pipe, as the engine does.
        def pump() -> None:
            for raw in iter(pipe.readline, b""):
                with self._lines_lock:
                    sink.append(raw.decode(errors="replace").rstrip("\n"))
            pipe.close()

        thread = threading.Thread(target=pump, name=f"provider-host-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, grace: float = 5.0) -> None:
        """Close the channel and end the process (SIGTERM, then SIGKILL after `grace` seconds)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._stub = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(grace)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            for thread in self._threads:
                thread.join(2)
            self._threads = []
            self._process = None

    def kill(self) -> None:
        """SIGKILL the host, as a crashed machine would; calls in flight fail with UNAVAILABLE."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def restart(self) -> ProviderHost:
        """Kill (if alive) and start a fresh process with the same settings; Configure is sent again."""
        self.kill()
        self.stop()
        return self.start()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("provider host not started")
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    @property
    def stub(self) -> provider_pb2_grpc.ResourceProviderStub:
        """The raw gRPC stub, for calls the helpers below do not cover."""
        if self._stub is None:
            raise RuntimeError("provider host not started")
        return self._stub

    def memory(self) -> dict[str, int]:
        """The host's current and peak resident memory in bytes (`rss`, `peak_rss`), from /proc (Linux)."""
        fields = {"VmRSS": "rss", "VmHWM": "peak_rss"}
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in fields:
                found[fields[key]] = int(value.split()[0]) * 1024
        return found

    # -- logs ----------------------------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the stderr log; pass it as `since=` to see only later lines."""
        with self._lines_lock:
            return len(self._stderr)

    def stderr_lines(self, since: int = 0) -> list[str]:
        with self._lines_lock:
            return list(self._stderr[since:])

    def stderr_text(self, since: int = 0) -> str:
        """What the provider wrote to stderr (pulumi.log.info/warn/error lines, tracebacks)."""
        return "\n".join(self.stderr_lines(since))

    def stdout_text(self) -> str:
        """stdout after the port line (print() in a provider); the engine relays it too."""
        with self._lines_lock:
            return "\n".join(self._stdout)

    def wait_for_stderr(self, needle: str, timeout: float = 10.0, since: int = 0) -> str:
        """Block until a stderr line contains needle; return that line (for crash tests' timing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stderr_lines(since):
                if needle in line:
                    return line
            time.sleep(0.01)
        raise TimeoutError(f"no stderr line containing {needle!r} within {timeout}s:\n{self.stderr_text()}")

    # -- RPCs ------------------------------------------------------------------------------------------------

    def _with_provider(self, props: Mapping[str, Any] | None) -> dict[str, Any]:
        out = dict(props or {})
        if out and PROVIDER_KEY not in out and self.provider_string is not None:
            out[PROVIDER_KEY] = self.provider_string
        return out

    def _call(self, method: str, request: Any, timeout: float | None) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as exc:
            raise ProviderError(method, exc.code(), exc.details()) from None

    def urn(self, name: str, type_: str = DEFAULT_TYPE) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{type_}::{name}"

    def plugin_info(self, timeout: float | None = None) -> str:
        return self._call("GetPluginInfo", empty_pb2.Empty(), timeout).version

    def configure(
        self, config: Mapping[str, str], *, secret_keys: Iterable[str] = (), timeout: float | None = None
    ) -> dict[str, bool]:
        """Configure with stack config keys as the engine sends them ("zstack:host": "..."), secrets wrapped."""
        secret = set(secret_keys)
        args = struct_pb2.Struct()
        for key, value in config.items():
            # acceptSecrets=True makes the engine send secret config as secret objects; the host unwraps them.
            args[key] = {rpc._special_sig_key: rpc._special_secret_sig, "value": value} if key in secret else value
        self._config = dict(config)
        self._secret_keys = list(secret)
        response = self._call(
            "Configure",
            provider_pb2.ConfigureRequest(
                variables={k: str(v) for k, v in config.items()},
                args=args,
                acceptSecrets=True,
                acceptResources=True,
            ),
            timeout,
        )
        return {"accept_secrets": response.acceptSecrets, "supports_preview": response.supportsPreview}

    def check(
        self,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        *,
        name: str = "res",
        type_: str = DEFAULT_TYPE,
        timeout: float | None = None,
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Check(olds = old inputs or {} on create, news) -> (checked inputs, [(property, reason)])."""
        response = self._call(
            "Check",
            provider_pb2.CheckRequest(
                urn=self.urn(name, type_),
                name=name,
                type=type_,
                olds=_to_struct(self._with_provider(olds)),
                news=_to_struct(self._with_provider(news)),
                randomSeed=os.urandom(32),
            ),
            timeout,
        )
        return _from_struct(response.inputs), [(f.property, f.reason) for f in response.failures]

    def create(
        self,
        props: Mapping[str, Any],
        preview: bool = False,
        *,
        name: str = "res",
        type_: str = DEFAULT_TYPE,
        timeout: float | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Create(checked inputs) -> (id, outputs incl. __provider).

        The engine never sends preview=True to a dynamic provider (supportsPreview is False); the SDK host
        ignores the flag and really creates.
        """
        response = self._call(
            "Create",
            provider_pb2.CreateRequest(
                urn=self.urn(name, type_),
                name=name,
                type=type_,
                properties=_to_struct(self._with_provider(props)),
                preview=preview,
            ),
            timeout,
        )
        return response.id, _from_struct(response.properties)

    def diff(
        self,
        id_: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        old_inputs: Mapping[str, Any] | None = None,
        *,
        name: str = "res",
        type_: str = DEFAULT_TYPE,
        timeout: float | None = None,
    ) -> DiffOutcome:
        """Diff(id, olds = old OUTPUTS, news = checked inputs); old_inputs is sent but the SDK ignores it."""
        response = self._call(
            "Diff",
            provider_pb2.DiffRequest(
                id=id_,
                urn=self.urn(name, type_),
                name=name,
                type=type_,
                olds=_to_struct(self._with_provider(olds)),
                news=_to_struct(self._with_provider(news)),
                old_inputs=_to_struct(self._with_provider(old_inputs)),
            ),
            timeout,
        )
        return DiffOutcome(
            changes=_CHANGES[response.changes],
            replaces=list(response.replaces),
            delete_before_replace=response.deleteBeforeReplace,
        )

    def update(
        self,
        id_: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        old_inputs: Mapping[str, Any] | None = None,
        *,
        name: str = "res",
        type_: str = DEFAULT_TYPE,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Update(id, olds = old OUTPUTS, news = checked inputs) -> new outputs."""
        response = self._call(
            "Update",
            provider_pb2.UpdateRequest(
                id=id_,
                urn=self.urn(name, type_),
                name=name,
                type=type_,
                olds=_to_struct(self._with_provider(olds)),
                news=_to_struct(self._with_provider(news)),
                old_inputs=_to_struct(self._with_provider(old_inputs)),
            ),
            timeout,
        )
        return _from_struct(response.properties)

    def read(
        self,
        id_: str,
        props: Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        *,
        name: str = "res",
        type_: str = DEFAULT_TYPE,
        timeout: float | None = None,
    ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """Read(id, props = stored OUTPUTS, inputs) -> (id, "" when gone; outputs; new inputs or None)."""
        response = self._call(
            "Read",
            provider_pb2.ReadRequest(
                id=id_,
                urn=self.urn(name, type_),
                name=name,
                type=type_,
                properties=_to_struct(self._with_provider(props)),
                inputs=_to_struct(self._with_provider(inputs)),
            ),
            timeout,
        )
        new_inputs = _from_struct(response.inputs) if response.HasField("inputs") else None
        return response.id, _from_struct(response.properties), new_inputs

    def delete(
        self,
        id_: str,
        props: Mapping[str, Any],
        old_inputs: Mapping[str, Any] | None = None,
        *,
        name: str = "res",
        type_: str = DEFAULT_TYPE,
        timeout: float | None = None,
    ) -> None:
        """Delete(id, props = stored OUTPUTS); old_inputs is sent but the SDK ignores it."""
        self._call(
            "Delete",
            provider_pb2.DeleteRequest(
                id=id_,
                urn=self.urn(name, type_),
                name=name,
                type=type_,
                properties=_to_struct(self._with_provider(props)),
                old_inputs=_to_struct(self._with_provider(old_inputs)),
            ),
            timeout,
        )


def run_concurrently(
    calls: Sequence[Callable[[], T]],
    *,
    max_workers: int | None = None,
    return_exceptions: bool = True,
) -> list[T | BaseException]:
    """Run calls from threads, released together, and return their results in order.

    With `return_exceptions` (default) a failed call's exception is returned in its place, so one failure does
    not hide the others; otherwise the first exception (in call order) is raised after all have finished.
    """
    go = threading.Event()

    def released(call: Callable[[], T]) -> T:
        go.wait()
        return call()

    with ThreadPoolExecutor(max_workers=max_workers or max(1, len(calls))) as pool:
        futures = [pool.submit(released, call) for call in calls]
        go.set()
        results: list[T | BaseException] = []
        for future in futures:
            error = future.exception()
            results.append(error if error is not None else future.result())
    if not return_exceptions:
        for item in results:
            if isinstance(item, BaseException):
                raise item
    return results


# ---------------------------------------------------------------------------------------------------------
# The engine stand-in


@dataclass
class ResourceState:
    """One resource in the stack state, as the engine's checkpoint holds it."""

    name: str
    urn: str
    type: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    # Deleted by a delete-before-replace whose Create then failed: the engine keeps the old state, marked
    # `pendingReplacement`, so that the next `up` creates the replacement without deleting again; refresh
    # leaves it alone and destroy drops it without a Delete (all seen with the real CLI v3.274.1).
    pending_replacement: bool = False


@dataclass
class StepResult:
    """What happened to one resource in a preview/up/refresh/destroy.

    `kind`: create | same | update | replace | delete (planned in a preview, performed otherwise), or, when
    the engine could not get as far as choosing, "check" (Check failed) or "diff" (Diff failed). On refresh:
    same | update | delete (the resource vanished and was dropped). `skipped` marks a removal that was not
    attempted because another step failed. A failed step leaves the resource's old state in place, except
    that a delete-before-replace whose Create failed has already deleted the old one: the state keeps it
    marked `pending_replacement`, as the real engine does.
    """

    name: str
    urn: str
    kind: str
    error: Exception | None = None
    diff: DiffOutcome | None = None
    id: str | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped


@dataclass
class RunResult:
    """All steps of one engine operation, keyed by resource name."""

    operation: str
    steps: dict[str, StepResult] = field(default_factory=dict)
    # Old resources of create-before-replace steps whose Delete failed and was retried (engine: pending delete).
    pending_deletes: list[StepResult] = field(default_factory=list)

    @property
    def kinds(self) -> dict[str, str]:
        return {name: step.kind for name, step in self.steps.items()}

    @property
    def errors(self) -> dict[str, Exception]:
        steps = list(self.steps.values()) + self.pending_deletes
        return {step.name: step.error for step in steps if step.error is not None}

    @property
    def ok(self) -> bool:
        return not self.errors and not any(s.skipped for s in self.steps.values())

    def raise_on_error(self) -> RunResult:
        if self.errors:
            name, error = next(iter(self.errors.items()))
            raise AssertionError(f"{self.operation} failed for {sorted(self.errors)}; {name}: {error}") from error
        return self


class Engine:
    """A stand-in for the Pulumi engine over one ProviderHost (shared/pulumi-dynamic.md §1.4, §4.4).

    `state` maps URN -> ResourceState. Declared resources are a mapping name -> input dict (`__provider` may
    be included, e.g. one captured by `run_program`; otherwise the host adds its own). Independent resources
    run concurrently, `parallel` at a time, like `pulumi up --parallel`. Unlike the engine, a failure does not
    cancel the other declared resources' steps; it does skip deletions of removed resources (the engine only
    deletes once everything else succeeded), unless `continue_on_error`.
    """

    def __init__(
        self,
        host: ProviderHost,
        *,
        type_: str = DEFAULT_TYPE,
        parallel: int = 16,
        continue_on_error: bool = False,
    ) -> None:
        self.host = host
        self.type = type_
        self.parallel = parallel
        self.continue_on_error = continue_on_error
        self.state: dict[str, ResourceState] = {}
        self.pending_deletes: list[ResourceState] = []
        self._lock = threading.Lock()

    # -- state access ------------------------------------------------------------------------------------------

    def urn(self, name: str) -> str:
        return self.host.urn(name, self.type)

    def resource(self, name: str) -> ResourceState | None:
        with self._lock:
            return self.state.get(self.urn(name))

    def names(self) -> list[str]:
        with self._lock:
            return sorted(r.name for r in self.state.values())

    def _put(self, res: ResourceState) -> None:
        with self._lock:
            self.state[res.urn] = res

    def _drop(self, urn: str) -> None:
        with self._lock:
            self.state.pop(urn, None)

    def _each(self, items: Iterable[T], fn: Callable[[T], StepResult]) -> list[StepResult]:
        items = list(items)
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(self.parallel, len(items)))) as pool:
            return list(pool.map(fn, items))

    # -- operations ------------------------------------------------------------------------------------------

    def preview(self, resources: Mapping[str, Mapping[str, Any]]) -> RunResult:
        """Check (and Diff for existing resources); no Create/Update/Delete; state untouched."""
        return self._deploy(resources, preview=True)

    def up(self, resources: Mapping[str, Mapping[str, Any]]) -> RunResult:
        """Bring the stack to `resources`: create new, same/update/replace existing, delete removed."""
        return self._deploy(resources, preview=False)

    def _deploy(self, resources: Mapping[str, Mapping[str, Any]], preview: bool) -> RunResult:
        result = RunResult("preview" if preview else "up")
        for step in self._each(resources.items(), lambda item: self._step(item[0], dict(item[1]), preview)):
            result.steps[step.name] = step
        declared = {self.urn(name) for name in resources}
        with self._lock:
            removed = [r for urn, r in self.state.items() if urn not in declared]
            pending = list(self.pending_deletes)
        go_on = preview or self.continue_on_error or not result.errors
        if preview:
            for res in removed:
                result.steps[res.name] = StepResult(res.name, res.urn, "delete", id=res.id, outputs=res.outputs)
        elif go_on:
            for step in self._each(pending, self._retry_pending_delete):
                result.pending_deletes.append(step)
            for step in self._each(removed, self._delete):
                result.steps[step.name] = step
        else:
            for res in removed:
                result.steps[res.name] = StepResult(res.name, res.urn, "delete", id=res.id, skipped=True)
        return result

    def _step(self, name: str, news: dict[str, Any], preview: bool) -> StepResult:
        urn = self.urn(name)
        with self._lock:
            old = self.state.get(urn)
        call = {"name": name, "type_": self.type}
        if old is None:
            step = StepResult(name, urn, "create")
            try:
                inputs, failures = self.host.check({}, news, **call)
                if failures:
                    raise CheckFailed(failures)
                step.inputs = inputs
                if preview:
                    # supportsPreview is False: the engine shows the inputs as the planned state.
                    step.outputs = inputs
                    return step
                step.id, step.outputs = self.host.create(inputs, **call)
                self._put(ResourceState(name, urn, self.type, step.id, inputs, step.outputs))
            except Exception as exc:  # noqa: BLE001 the engine reports per resource and carries on
                step.error = exc
            return step

        step = StepResult(name, urn, "check", id=old.id)
        try:
            inputs, failures = self.host.check(old.inputs, news, **call)
            if failures:
                raise CheckFailed(failures)
            step.kind = "diff"
            step.diff = self.host.diff(old.id, old.outputs, inputs, old.inputs, **call)
            step.kind = self._classify(step.diff, old.inputs, inputs)
            step.inputs = inputs
            if step.kind == "same":
                step.outputs = old.outputs
                if not preview:
                    # A same step keeps the old outputs (and the old __provider inside them) with the new inputs.
                    self._put(ResourceState(name, urn, self.type, old.id, inputs, old.outputs))
            elif step.kind == "update":
                if preview:
                    step.outputs = inputs
                    return step
                step.outputs = self.host.update(old.id, old.outputs, inputs, old.inputs, **call)
                self._put(ResourceState(name, urn, self.type, old.id, inputs, step.outputs))
            else:
                self._replace(step, old, news, preview, call)
        except Exception as exc:  # noqa: BLE001 the engine reports per resource and carries on
            step.error = exc
        return step

    @staticmethod
    def _classify(diff: DiffOutcome, old_inputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
        if diff.changes == "unknown":
            # No answer from the provider: the engine compares old and new inputs itself, __provider included.
            return "same" if dict(old_inputs) == dict(inputs) else "update"
        if diff.replace:
            return "replace"
        return "update" if diff.changes == "some" else "same"

    def _replace(
        self, step: StepResult, old: ResourceState, news: dict[str, Any], preview: bool, call: dict[str, str]
    ) -> None:
        # A replacement is checked again as a fresh resource: olds = {}.
        inputs, failures = self.host.check({}, news, **call)
        if failures:
            raise CheckFailed(failures)
        step.inputs = inputs
        if preview:
            step.outputs = inputs
            return
        name, urn = old.name, old.urn
        if step.diff is not None and step.diff.delete_before_replace:
            if not old.pending_replacement:
                self.host.delete(old.id, old.outputs, old.inputs, **call)
                self._put(replace(old, pending_replacement=True))
            step.id, step.outputs = self.host.create(inputs, **call)
            self._put(ResourceState(name, urn, self.type, step.id, inputs, step.outputs))
            return
        step.id, step.outputs = self.host.create(inputs, **call)
        self._put(ResourceState(name, urn, self.type, step.id, inputs, step.outputs))
        with self._lock:
            self.pending_deletes.append(old)
        self.host.delete(old.id, old.outputs, old.inputs, **call)
        with self._lock:
            self.pending_deletes.remove(old)

    def _delete(self, res: ResourceState) -> StepResult:
        step = StepResult(res.name, res.urn, "delete", id=res.id, outputs=res.outputs)
        try:
            if not res.pending_replacement:  # already deleted on the node
                self.host.delete(res.id, res.outputs, res.inputs, name=res.name, type_=res.type)
            self._drop(res.urn)
        except Exception as exc:  # noqa: BLE001 a failed delete keeps the resource in state
            step.error = exc
        return step

    def _retry_pending_delete(self, res: ResourceState) -> StepResult:
        step = StepResult(res.name, res.urn, "delete", id=res.id, outputs=res.outputs)
        try:
            self.host.delete(res.id, res.outputs, res.inputs, name=res.name, type_=res.type)
            with self._lock:
                self.pending_deletes.remove(res)
        except Exception as exc:  # noqa: BLE001 stays pending for the next run
            step.error = exc
        return step

    def refresh(self) -> RunResult:
        """Read every resource: a blank id drops it; returned inputs replace the stored ones."""
        result = RunResult("refresh")
        with self._lock:
            current = list(self.state.values())
        for step in self._each(current, self._refresh_one):
            result.steps[step.name] = step
        return result

    def _refresh_one(self, res: ResourceState) -> StepResult:
        step = StepResult(res.name, res.urn, "same", id=res.id)
        if res.pending_replacement:
            return step  # the real engine does not read a resource it is about to create again
        try:
            new_id, outputs, inputs = self.host.read(res.id, res.outputs, res.inputs, name=res.name, type_=res.type)
            if not new_id:
                step.kind = "delete"
                self._drop(res.urn)
                return step
            new_inputs = inputs if inputs is not None else res.inputs
            changed = outputs != res.outputs or new_inputs != res.inputs or new_id != res.id
            step.kind = "update" if changed else "same"
            step.id, step.outputs, step.inputs = new_id, outputs, new_inputs
            self._put(ResourceState(res.name, res.urn, res.type, new_id, new_inputs, outputs))
        except Exception as exc:  # noqa: BLE001 a failed read keeps the resource as it was
            step.error = exc
        return step

    def destroy(self) -> RunResult:
        """Delete every resource (and pending deletes); a failed Delete keeps the resource in state."""
        result = RunResult("destroy")
        with self._lock:
            current = list(self.state.values())
            pending = list(self.pending_deletes)
        result.pending_deletes.extend(self._each(pending, self._retry_pending_delete))
        for step in self._each(current, self._delete):
            result.steps[step.name] = step
        return result


# ---------------------------------------------------------------------------------------------------------
# Programs under mocks


@dataclass(frozen=True)
class Registration:
    """One resource registration as the mock monitor saw it; `inputs[__provider]` is unwrapped to a string."""

    typ: str
    name: str
    inputs: dict[str, Any]
    id: str | None
    custom: bool
    provider: str | None

    @property
    def provider_string(self) -> str | None:
        return self.inputs.get(PROVIDER_KEY)

    @property
    def props(self) -> dict[str, Any]:
        return without_provider(self.inputs)

    @property
    def is_dynamic(self) -> bool:
        return self.typ.startswith("pulumi-python:dynamic")


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every registration and answers with the inputs as outputs.

    The id is `"<name>-id"` on up and "" in a preview (what the engine returns for a planned create).
    `handler(args) -> (id, outputs)` replaces that answer, e.g. to forward to a ProviderHost.
    """

    def __init__(
        self,
        *,
        preview: bool = False,
        handler: Callable[[MockResourceArgs], tuple[str | None, dict[str, Any]]] | None = None,
    ) -> None:
        self.preview = preview
        self.handler = handler
        self.registrations: list[Registration] = []
        self.calls: list[MockCallArgs] = []
        self.resource_outputs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        if PROVIDER_KEY in inputs:
            # Resource.__init__ makes __provider a secret (always, since 3.75).
            inputs[PROVIDER_KEY] = rpc.unwrap_rpc_secret(inputs[PROVIDER_KEY])
        if self.handler is not None:
            id_, outputs = self.handler(args)
        else:
            id_ = "" if self.preview else f"{args.name}-id"
            # Unknown instances cannot be serialized back; UNKNOWN on the wire decodes to unknown outputs.
            outputs = {k: UNKNOWN if isinstance(v, Unknown) else v for k, v in args.inputs.items()}
        with self._lock:
            self.registrations.append(Registration(args.typ, args.name, inputs, id_, bool(args.custom), args.provider))
        return id_, outputs

    def call(self, args: MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        with self._lock:
            self.calls.append(args)
        return {}, []


class _RecordingMonitor(MockMonitor):
    """MockMonitor that keeps RegisterResourceOutputs (the stack's exports arrive through it)."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 gRPC method name
        outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        with self.recording._lock:
            self.recording.resource_outputs[request.urn] = outputs
        return super().RegisterResourceOutputs(request)


@dataclass
class ProgramRun:
    """The outcome of `run_program`."""

    registrations: list[Registration]
    exports: dict[str, Any]
    secret_exports: set[str]
    mocks: RecordingMocks
    preview: bool

    def dynamic(self) -> list[Registration]:
        return [r for r in self.registrations if r.is_dynamic]

    def by_name(self, name: str) -> Registration:
        matches = [r for r in self.registrations if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} registrations named {name!r}")
        return matches[0]

    def declared(self) -> dict[str, dict[str, Any]]:
        """Dynamic registrations as Engine resources: name -> inputs (with the captured __provider)."""
        return {r.name: dict(r.inputs) for r in self.dynamic()}


def run_program(
    path: str | os.PathLike[str],
    config: Mapping[str, Any] | None = None,
    preview: bool = False,
    *,
    project: str | None = None,
    stack: str = DEFAULT_STACK,
    secret_keys: Iterable[str] = (),
    mocks: RecordingMocks | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> ProgramRun:
    """Run a Pulumi program file under mocks, the way the language host runs `__main__.py`.

    `config` keys are stack config keys ("zstack:host"; a key without a namespace gets the project's);
    non-string values are stored as JSON, as the CLI stores structured config. The program runs with
    run_name "__main__" inside `run_in_stack`, in the program's directory (cwd and sys.path[0]); the call
    returns once every registration and output has resolved. Runs in a copied context, so runs do not leak
    settings or config into each other or the caller.
    """
    program = Path(path).resolve()
    project = project or project_name(program.parent)
    mocks = mocks or RecordingMocks(preview=preview)
    full_config = {
        (key if ":" in key else f"{project}:{key}"): (value if isinstance(value, str) else json.dumps(value))
        for key, value in (config or {}).items()
    }
    secrets = [key if ":" in key else f"{project}:{key}" for key in secret_keys]
    context = contextvars.copy_context()
    return context.run(_run_program_in_context, program, full_config, secrets, preview, project, stack, mocks, cwd)


def _current_event_loop() -> asyncio.AbstractEventLoop | None:
    # The caller's loop is restored afterwards, so later Output code in the same thread still finds one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return None


def _run_program_in_context(
    program: Path,
    config: dict[str, str],
    secret_keys: list[str],
    preview: bool,
    project: str,
    stack: str,
    mocks: RecordingMocks,
    cwd: str | os.PathLike[str] | None,
) -> ProgramRun:
    previous_loop = _current_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    old_cwd, old_path = os.getcwd(), list(sys.path)
    try:
        set_all_config(config, secret_keys)
        monitor = _RecordingMonitor(mocks)
        # A placeholder root stops set_mocks from making (and finishing) its own Stack: run_in_stack makes the
        # real one and registers the exports when the program is done, as under the CLI.
        pulumi_settings.ROOT.set(object())  # type: ignore[arg-type]
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
        pulumi_settings.ROOT.set(None)
        # MockSettings leaves these as the caller's objects; fresh ones keep runs apart.
        pulumi_settings.SETTINGS.outputs = set()
        pulumi_settings.SETTINGS.lock = threading.Lock()
        sys.path.insert(0, str(program.parent))
        os.chdir(cwd or program.parent)
        loop.run_until_complete(run_in_stack(lambda: runpy.run_path(str(program), run_name="__main__")))
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        loop.close()
        asyncio.set_event_loop(previous_loop)
    stack_outputs = next((out for urn, out in mocks.resource_outputs.items() if "::pulumi:pulumi:Stack::" in urn), {})
    exports = {k: rpc.unwrap_rpc_secret(v) for k, v in stack_outputs.items()}
    secret = {k for k, v in stack_outputs.items() if rpc.is_rpc_secret(v)}
    return ProgramRun(list(mocks.registrations), exports, secret, mocks, preview)
