"""The Pulumi CLI for the e2e tier and the CLI benchmark: which one to run, and the environment it runs in."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .wire import PROJECT_ROOT

# The oldest CLI allowed to run the SDK that pyproject.toml pins (tools/pulumi/install uses the same rule).
MINIMUM_CLI = (3, 272, 0)
# The project's virtualenv: a test project's Pulumi.yaml names it, so its programs import this checkout.
VENV = PROJECT_ROOT / ".venv"
PASSPHRASE = "zstack-iso-e2e"


def _version(cli: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([cli, "version"], capture_output=True, text=True, timeout=60, check=False).stdout
    except OSError:
        return None
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", out.strip())
    return tuple(int(part) for part in match.groups()) if match else None


def find_cli() -> tuple[str | None, str]:
    """(path of the CLI to use, or None; why not, when None): the one `make pulumi-cli` recorded in
    .tools/pulumi-path, else a new-enough `pulumi` on PATH."""
    recorded = PROJECT_ROOT / ".tools" / "pulumi-path"
    if recorded.exists():
        path = recorded.read_text().strip()
        if os.access(path, os.X_OK):
            return path, ""
    found = shutil.which("pulumi")
    if found and (_version(found) or (0,)) >= MINIMUM_CLI:
        return found, ""
    why = "no Pulumi CLI: run `make pulumi-cli` (builds it from Go modules) or install v3.272.0 or newer"
    return None, why


def project_env(directory: Path) -> dict[str, str]:
    """The CLI's environment: local backend and home in the project, and nothing that reaches the network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "ZSTACK_"))}
    env.update(
        PULUMI_HOME=str(directory / ".pulumi-home"),
        PULUMI_BACKEND_URL=f"file://{directory / '.state'}",
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        # No colour codes and no progress animation in what the tests read.
        NO_COLOR="1",
        PULUMI_SUPPRESS_COPILOT_LINK="true",
    )
    return env
