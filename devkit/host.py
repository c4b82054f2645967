"""`ProviderHost`: the SDK's own provider host, `python -u -m pulumi.dynamic`, driven over gRPC as the engine
drives it, with plain dicts in and out.

It is started as the CLI's `pulumi-resource-pulumi-python` starts it (cwd = the project root, the environment
plus PULUMI_PROJECT), and every call carries what the engine would send; the facts it relies on are in
docs/engine-stand-in.md#the-sdks-provider-host and docs/engine-stand-in.md#what-the-engine-sends.

    from devkit import UNKNOWN, ProviderHost

    with ProviderHost(MyProvider(), config={"zstack:host": "127.0.0.1"}, remove_env=["ZSTACK_*"]) as host:
        inputs, failures = host.check({}, {"vm_uuid": UNKNOWN})      # a preview
        id_, outs = host.create(host.check({}, {"vm_uuid": vm})[0])

Every host method is safe to call from many threads at once (a gRPC stub is thread-safe); the SDK host
serves at most 4 calls at a time and queues the rest. `run_concurrently` starts calls together.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pulumi.dynamic
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from .wire import (
    DEFAULT_STACK,
    DEFAULT_TYPE,
    PROJECT_ROOT,
    PROVIDER_KEY,
    from_struct,
    project_name,
    serialize_provider,
    to_struct,
)

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0


# ---------------------------------------------------------------------------------------------------------
# Errors and results of the host's calls


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
        # The address argument is what the CLI passes (the engine's); the SDK host ignores it
        # (docs/engine-stand-in.md#the-sdks-provider-host).
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
                olds=to_struct(self._with_provider(olds)),
                news=to_struct(self._with_provider(news)),
                randomSeed=os.urandom(32),
            ),
            timeout,
        )
        return from_struct(response.inputs), [(f.property, f.reason) for f in response.failures]

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
                properties=to_struct(self._with_provider(props)),
                preview=preview,
            ),
            timeout,
        )
        return response.id, from_struct(response.properties)

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
                olds=to_struct(self._with_provider(olds)),
                news=to_struct(self._with_provider(news)),
                old_inputs=to_struct(self._with_provider(old_inputs)),
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
                olds=to_struct(self._with_provider(olds)),
                news=to_struct(self._with_provider(news)),
                old_inputs=to_struct(self._with_provider(old_inputs)),
            ),
            timeout,
        )
        return from_struct(response.properties)

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
                properties=to_struct(self._with_provider(props)),
                inputs=to_struct(self._with_provider(inputs)),
            ),
            timeout,
        )
        new_inputs = from_struct(response.inputs) if response.HasField("inputs") else None
        return response.id, from_struct(response.properties), new_inputs

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
                properties=to_struct(self._with_provider(props)),
                old_inputs=to_struct(self._with_provider(old_inputs)),
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
