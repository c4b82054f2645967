"""Development kit of zstack-iso: what the tests and the benchmarks drive the project with. Not in the wheel."""

from .cli import MINIMUM_CLI, VENV, find_cli, project_env
from .host import *  # noqa: F403
from .host import __all__ as _host_all
from .simctl import SimCtl

__all__ = [*_host_all, "MINIMUM_CLI", "VENV", "SimCtl", "find_cli", "project_env"]
