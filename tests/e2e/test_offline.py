"""The CLI never reaches for the network: a whole stack's life in a network namespace that has only loopback,
with the simulator inside it. An update check or a plugin download would fail there (no route to anywhere)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devkit import PROJECT_ROOT, VENV, project_env
from tests.e2e.conftest import STACK

PORT = 18080  # the namespace is private: any port is free

SCRIPT = """
set -e
ip link set lo up
{python} -m zstack_iso.simulator --port {port} --job-seconds 0.02 --background --pid-file sim.pid --log-file sim.log
trap 'kill $(cat sim.pid)' EXIT
{cli} stack init {stack}
{cli} config set zstack:endpoint http://127.0.0.1:{port}
{cli} config set zstack:accountName admin
{cli} config set --secret zstack:accountPassword password
{cli} preview
{cli} up --yes
{cli} preview --expect-no-changes
{cli} refresh --yes
{cli} destroy --yes
"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -n` (root, or user namespaces) and `ip`")
def test_a_stack_lives_and_dies_with_no_network_but_loopback(tmp_path: Path, cli: str):
    project = tmp_path / "project"
    (project / ".state").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text(
        f"name: zstack-iso-offline\nruntime:\n  name: python\n  options:\n    virtualenv: {VENV}\n"
    )
    # The example program's demo set, by name: the lookups reach the simulator in the namespace too.
    shutil.copy(PROJECT_ROOT / "__main__.py", project / "__main__.py")
    script = SCRIPT.format(python=sys.executable, port=PORT, cli=cli, stack=STACK)

    run = subprocess.run(
        ["unshare", "-n", "bash", "-c", script],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "+ 5 created" in run.stdout
    assert "- 5 deleted" in run.stdout
