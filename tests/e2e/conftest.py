"""The end-to-end tier: the real Pulumi CLI, each test in its own temporary project and file backend.

The CLI is the one `make pulumi-cli` found or built (.tools/pulumi-path), else a new-enough `pulumi` on PATH.
Without one the tier is skipped with the reason, except in CI (CI=true), where that is a failure.

Each test gets a `Project`: a folder with a Pulumi.yaml on this repository's virtualenv, a program the test
writes, a stack `e2e` on a file backend inside the folder, and the zstack config pointing at the session's
simulator (reset for every test by the `sim` fixture). `Project.pulumi(...)` runs the CLI as a user would
and returns what they would read; `Project.stack` is the same stack through the Automation API.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from devkit import VENV, SimCtl, find_cli, project_env

STACK = "e2e"
PROJECT_NAME = "zstack-iso-e2e"
# A program's header: the package under test, found through the project's virtualenv.
HEADER = "import pulumi\nfrom zstack_iso import IsoAttachment\n\n"


@pytest.fixture(scope="session")
def cli() -> str:
    path, why = find_cli()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the e2e tier: {why}")
        pytest.skip(why)
    return path


@dataclass(repr=False)
class Run:
    """What a user sees after one command."""

    args: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"$ pulumi {' '.join(self.args)}  (exit {self.code})\n{self.output}"

    __repr__ = __str__


@dataclass
class Project:
    """A Pulumi project in a temporary folder, with its own backend, home and stack."""

    dir: Path
    cli: str
    sim: SimCtl = field(repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)

    # -- the program ----------------------------------------------------------------------------------

    def write_program(self, body: str) -> None:
        """Write `__main__.py`: the header (pulumi, IsoAttachment) and `body`, dedented."""
        (self.dir / "__main__.py").write_text(HEADER + textwrap.dedent(body))

    def declare(self, attachments: Mapping[str, Mapping[str, Any]], exports: bool = True) -> None:
        """A program declaring `name -> {vm_uuid, iso_uuid[, cdrom_uuid]}`, exporting each one's outputs."""
        lines = []
        for name, inputs in attachments.items():
            args = ", ".join(f"{key}={value!r}" for key, value in inputs.items())
            lines.append(f"r = IsoAttachment({name!r}, {args})")
            if exports:
                lines.append(
                    f"pulumi.export({name!r}, {{'id': r.id, 'cdrom_uuid': r.cdrom_uuid, 'device_id': r.device_id}})"
                )
        self.write_program("\n".join(lines) + "\n")

    def declare_and_up(self, attachments: Mapping[str, Mapping[str, Any]]) -> Run:
        """`declare(attachments)`, then an `up` that must succeed: the stack a test starts from."""
        self.declare(attachments)
        return self.up()

    # -- the CLI as a user types it -------------------------------------------------------------------

    def pulumi(self, *args: str, check: bool = True, timeout: float = 300, env: Mapping[str, str] | None = None) -> Run:
        """Run `pulumi ARGS` in the project; `check`: fail the test (with the output) on a non-zero exit."""
        proc = subprocess.run(
            [self.cli, *args],
            cwd=self.dir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        run = Run(list(args), proc.returncode, proc.stdout, proc.stderr)
        if check and run.code != 0:
            raise AssertionError(f"command failed:\n{run}")
        return run

    def up(self, *args: str, check: bool = True) -> Run:
        return self.pulumi("up", "--yes", "--skip-preview", *args, check=check)

    def preview(self, *args: str, check: bool = True) -> Run:
        return self.pulumi("preview", *args, check=check)

    def refresh(self, *args: str, check: bool = True) -> Run:
        return self.pulumi("refresh", "--yes", "--skip-preview", *args, check=check)

    def destroy(self, *args: str, check: bool = True) -> Run:
        return self.pulumi("destroy", "--yes", "--skip-preview", *args, check=check)

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "output", "--json", "--show-secrets").stdout)

    def export(self) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "export").stdout)

    def resources(self) -> dict[str, dict[str, Any]]:
        """name -> the state's record of every IsoAttachment in the stack."""
        resources = self.export()["deployment"].get("resources") or []
        return {r["urn"].split("::")[-1]: r for r in resources if r["type"].endswith("zstack:IsoAttachment")}

    def pending_operations(self) -> list[dict[str, Any]]:
        return self.export()["deployment"].get("pending_operations") or []

    def config(self, key: str, value: str, secret: bool = False) -> None:
        self.pulumi("config", "set", *(["--secret"] if secret else ["--plaintext"]), key, value)

    # -- the same stack through the Automation API -----------------------------------------------------

    @property
    def stack(self) -> auto.Stack:
        workspace = auto.LocalWorkspace(
            work_dir=str(self.dir),
            pulumi_home=self.env["PULUMI_HOME"],
            env_vars=self.env,
            pulumi_command=auto.PulumiCommand(root=str(Path(self.cli).parent.parent)),
        )
        return auto.Stack.select(STACK, workspace)


def make_project(directory: Path, cli: str, sim: SimCtl, *, credentials: bool = True) -> Project:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".state").mkdir()
    (directory / "Pulumi.yaml").write_text(
        f"name: {PROJECT_NAME}\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: {VENV}\n"
    )
    project = Project(directory, cli, sim, project_env(directory))
    project.write_program("")
    project.pulumi("stack", "init", STACK)
    project.config("zstack:endpoint", sim.url)
    if credentials:
        project.config("zstack:accountName", "admin")
        project.config("zstack:accountPassword", "password", secret=True)
    return project


@pytest.fixture
def project(tmp_path: Path, cli: str, sim: SimCtl) -> Iterator[Project]:
    yield make_project(tmp_path / "project", cli, sim)


def _iso_jobs(sim: SimCtl, method: str) -> list[str]:
    """The ISO jobs of one method the node accepted (202), in order: a job submitted twice shows up twice."""
    return [
        r["path"].split("/vm-instances/")[1]
        for r in sim.journal()["requests"]
        if r["method"] == method and "/iso" in r["path"] and r["status"] == 202
    ]


def attach_jobs(sim: SimCtl) -> list[str]:
    """Attach jobs accepted, as `<vm>/iso/<iso>`."""
    return _iso_jobs(sim, "POST")


def detach_jobs(sim: SimCtl) -> list[str]:
    """Detach jobs accepted, as `<vm>/iso?isoUuid=<iso>`."""
    return _iso_jobs(sim, "DELETE")
