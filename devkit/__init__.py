"""Development kit of zstack-iso: what the tests and the benchmarks drive the project with. Not in the wheel.

* `ProviderHost` (host.py): the SDK's own provider host, `python -u -m pulumi.dynamic`, started as the CLI
  starts it and spoken to over gRPC as the engine speaks to it.
* `Engine` (engine.py): a stand-in for the deployment engine on top of a host: stack state, preview, up,
  refresh, destroy.
* `run_program` (program.py): a Pulumi program under `pulumi.runtime.set_mocks`, every registration recorded.
* `SimCtl` (simctl.py): the simulator's control API and admin ZStack calls, over plain `requests`.
* `find_cli`, `project_env` (cli.py): the Pulumi CLI to run and the environment it runs in.

What the stand-in relies on, and what it leaves out: docs/engine-stand-in.md. It is importable from the
repository's root: pytest puts the root on `sys.path` (`pythonpath` in pyproject.toml), and `python -m bench`
runs from there.
"""

from .cli import MINIMUM_CLI, VENV, find_cli, project_env
from .engine import CheckFailed, Engine, ResourceState, RunResult, StepResult
from .host import DEFAULT_TIMEOUT, DiffOutcome, HostStartError, ProviderError, ProviderHost, run_concurrently
from .program import ProgramRun, RecordingMocks, Registration, run_program
from .simctl import SimCtl
from .wire import (
    DEFAULT_STACK,
    DEFAULT_TYPE,
    PROJECT_ROOT,
    PROVIDER_KEY,
    UNKNOWN,
    decode_provider,
    is_unknown,
    project_name,
    serialize_provider,
    without_provider,
)

__all__ = [
    "DEFAULT_STACK",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TYPE",
    "MINIMUM_CLI",
    "PROJECT_ROOT",
    "PROVIDER_KEY",
    "UNKNOWN",
    "VENV",
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
    "SimCtl",
    "StepResult",
    "decode_provider",
    "find_cli",
    "is_unknown",
    "project_env",
    "project_name",
    "run_concurrently",
    "run_program",
    "serialize_provider",
    "without_provider",
]
