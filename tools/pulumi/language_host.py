"""`pulumi-language-python` for a CLI built from Go modules: runs a Python Pulumi program for the engine.

The Pulumi release ships a Go language host that the module proxy does not serve at any release commit (its
module has no tags; docs/pulumi-cli.md says what was tried), so a CLI built from `pkg/v3` alone has no way
to run a Python program. This is that missing piece, kept as small as the job allows:

* it speaks the engine's `LanguageRuntime` gRPC protocol with the stubs of the installed `pulumi` SDK;
* `Run` starts `pulumi-language-python-exec`, the release's own program runner, taken from the pinned
  `sdk/v3` Go module, exactly as the Go host does: the project's virtualenv (`runtime.options.virtualenv`),
  the same arguments, the stack config in `PULUMI_CONFIG`, exit code 32 for "already reported";
* everything else the CLI asks of a language host during `up`, `preview`, `refresh`, `destroy` and
  `import` answers as the Go host does for a project without plugin packages.

Started by the CLI as `pulumi-language-python <engine address>`; prints its port, serves until the CLI
closes it (SIGINT or SIGTERM), and exits by itself if the CLI dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from shutil import which

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

# The runner's "the user already saw a good error message" exit code.
EXITED_AFTER_USER_MESSAGE = 32


class PythonLanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    """The `LanguageRuntime` service for pip-managed Python programs."""

    def __init__(self, engine_address: str, runner: Path, version: str) -> None:
        self._engine_address = engine_address
        self._runner = runner
        self._version = version
        self._lock = threading.Lock()
        self._programs: set[subprocess.Popen[bytes]] = set()

    # -- what the CLI asks before it runs anything ----------------------------------------------------

    def Handshake(self, request, context):  # noqa: N802 (gRPC method names)
        if request.engine_address:
            self._engine_address = request.engine_address
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):  # noqa: N802
        return plugin_pb2.PluginInfo(version=self._version)

    def GetRequiredPlugins(self, request, context):  # noqa: N802
        # The dynamic-provider plugin (pulumi-python) is found by the engine itself; no package ships others.
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request, context):  # noqa: N802
        return language_pb2.GetRequiredPackagesResponse()

    def About(self, request, context):  # noqa: N802
        python = _interpreter(request.info)
        return language_pb2.AboutResponse(executable=str(python), version=_python_version(python))

    # -- the program --------------------------------------------------------------------------------------

    def Run(self, request, context):  # noqa: N802
        try:
            python = _interpreter(request.info)
        except ValueError as problem:
            return language_pb2.RunResponse(error=str(problem))
        if not python.exists():
            return language_pb2.RunResponse(error=_missing_virtualenv(request.info, python))
        args = [str(python), "-u", str(self._runner), *self._arguments(request)]
        env = _program_environment(request, python)
        program = subprocess.Popen(args, env=env, cwd=request.pwd or None)
        with self._lock:
            self._programs.add(program)
        try:
            code = program.wait()
        finally:
            with self._lock:
                self._programs.discard(program)
        if code == 0:
            return language_pb2.RunResponse()
        if code == EXITED_AFTER_USER_MESSAGE:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"program exited with non-zero exit code: {code}")

    def Cancel(self, request, context):  # noqa: N802
        self.interrupt_programs()
        return empty_pb2.Empty()

    def interrupt_programs(self) -> None:
        """SIGINT to the running program, as the Go host does when the engine cancels."""
        with self._lock:
            programs = list(self._programs)
        for program in programs:
            if program.poll() is None:
                program.send_signal(signal.SIGINT)

    def _arguments(self, request) -> list[str]:
        """The runner's command line, in the order and form the Go host builds it."""
        named = [
            ("monitor", request.monitor_address),
            ("engine", self._engine_address),
            ("project", request.project),
            ("root_directory", request.info.root_directory),
            ("stack", request.stack),
            ("pwd", request.pwd),
            ("dry_run", "true" if request.dryRun else "false"),
            ("parallel", str(request.parallel)),
            ("organization", request.organization),
        ]
        args = [part for key, value in named if value for part in (f"--{key}", value)]
        return [*args, request.info.entry_point or ".", *request.args]


def _interpreter(info) -> Path:
    """The project's Python: its virtualenv when Pulumi.yaml names one, else PULUMI_PYTHON_CMD or python3."""
    virtualenv = _virtualenv(info)
    if virtualenv is not None:
        return virtualenv / "bin" / "python"
    command = os.environ.get("PULUMI_PYTHON_CMD") or "python3"
    found = which(command)
    return Path(found) if found else Path(command)


def _virtualenv(info) -> Path | None:
    options = dict(info.options) if info is not None and info.options else {}
    toolchain = options.get("toolchain") or "pip"
    if toolchain != "pip":
        raise ValueError(f"runtime.options.toolchain {toolchain!r}: this language host runs pip projects only")
    name = options.get("virtualenv")
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() else Path(info.root_directory or ".") / path


def _program_environment(request, python: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
    env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
    virtualenv = _virtualenv(request.info)
    if virtualenv is not None:
        env["VIRTUAL_ENV"] = str(virtualenv)
        env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PYTHONHOME", None)
    return env


def _missing_virtualenv(info, python: Path) -> str:
    virtualenv = _virtualenv(info)
    where = f"the virtualenv {virtualenv}" if virtualenv is not None else "Python"
    return f"{where} has no {python.name} ({python}); create it with `make venv` in the project, then run again"


def _python_version(python: Path) -> str:
    try:
        out = subprocess.run([str(python), "--version"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return out.stdout.strip().removeprefix("Python ")


def _exit_when_orphaned(parent: int, on_exit) -> None:
    """The CLI kills its plugins when it ends normally; if it is killed itself, this host must not linger."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                on_exit()
                os._exit(0)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """`language_host.py --runner PATH --version V [engine flags...] ENGINE_ADDRESS` (the launcher adds the
    first two; the CLI passes its logging flags, if any, and the engine's address last)."""
    runner, version = Path(argv[argv.index("--runner") + 1]), argv[argv.index("--version") + 1]
    engine_address = argv[-1] if argv and not argv[-1].startswith("-") else ""
    host = PythonLanguageHost(engine_address, runner, version)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)

    done = threading.Event()

    def stop(_signum, _frame) -> None:
        host.interrupt_programs()
        done.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    _exit_when_orphaned(os.getppid(), host.interrupt_programs)
    done.wait()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
