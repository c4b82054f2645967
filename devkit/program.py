"""`run_program`: a Pulumi program file run under `pulumi.runtime.set_mocks`, every registration recorded, so that
its captured `__provider` can be replayed into a `ProviderHost` (docs/engine-stand-in.md#programs-under-mocks).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import runpy
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs
from pulumi.runtime.stack import run_in_stack

from .wire import DEFAULT_STACK, PROVIDER_KEY, UNKNOWN, project_name, without_provider


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
