"""Benchmark 6: scale as the real engine sees it. `pulumi up` and `pulumi preview` of 48 attachments over 16
VMs (jobs of 0.3 s), timed as whole CLI commands, beside the CLI's own fixed cost: the same 48 resources
with a dynamic provider that does nothing (create returns at once, diff answers "no change").

The CLI is the one `make pulumi-cli` found or built (.tools/pulumi-path), else `pulumi` on PATH; without one
the benchmark says so and adds no rows. Throughput through the provider host alone is benchmark 3.
`pulumi up` runs twice: with the CLI's default parallelism (4 per core) and with `--parallel 64`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from bench.harness import Row, Suite, log, median, secs, standalone, timed, times
from devkit import VENV, find_cli, project_env

VMS = 16
JOB = 0.3
# The CLI runs at most 4 × GOMAXPROCS resource operations at once unless told otherwise (`--parallel`,
# PULUMI_PARALLEL): 8 on a 2-core machine, which alone makes 48 attachments take 6 rounds of a job.
WIDE = 64

NOOP_PROGRAM = """
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class Nothing(ResourceProvider):
    def create(self, props):
        return CreateResult(props["key"], dict(props))

    def diff(self, _id, _olds, _news):
        return DiffResult(changes=False)


class Noop(Resource, module="bench", name="Noop"):
    def __init__(self, name, key):
        super().__init__(Nothing(), name, {"key": key})


for i in range(48):
    Noop(f"noop-{i}", f"key-{i}")
"""


class CliProject:
    """A throwaway project on a file backend, driven through the CLI as a user would."""

    def __init__(self, cli: str, folder: Path, program: str, config: dict[str, str]) -> None:
        self.cli, self.dir = cli, folder
        (folder / ".state").mkdir(parents=True)
        (folder / "Pulumi.yaml").write_text(
            "name: zstack-iso-bench\nruntime:\n  name: python\n  options:\n"
            f"    toolchain: pip\n    virtualenv: {VENV}\n"
        )
        (folder / "__main__.py").write_text(program)
        self.env = project_env(folder)  # the e2e tier's: file backend and home in the folder, no network
        self.run("stack", "init", "bench")
        for key, value in config.items():
            self.run("config", "set", key, value)

    def run(self, *args: str) -> None:
        proc = subprocess.run(
            [self.cli, *args], cwd=self.dir, env=self.env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pulumi {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


def _attachments_program(pairs: list[tuple[str, str]]) -> str:
    lines = ["from zstack_iso import IsoAttachment", ""]
    lines += [f"IsoAttachment('a{i}', vm_uuid={vm!r}, iso_uuid={iso!r})" for i, (vm, iso) in enumerate(pairs)]
    return "\n".join(lines) + "\n"


def run(suite: Suite) -> None:
    cli, _why = find_cli()
    if cli is None:
        suite.notes.append("6: no Pulumi CLI (run `make pulumi-cli`): the CLI rows were not measured.")
        log("  cli: no Pulumi CLI, skipped")
        return
    sim, fleet = suite.sim, suite.fleet
    vms = fleet.empty_vms[:VMS]
    # Round-robin over VMs, as a program that loops over ISOs, then VMs, declares them.
    pairs = [(vm, iso) for iso in fleet.isos for vm in vms]
    ideal = len(fleet.isos) * JOB
    config = {"zstack:endpoint": sim.url, "zstack:accountName": "admin", "zstack:accountPassword": "password"}
    walls: dict[str, list[float]] = {"up": [], "up wide": [], "preview": [], "noop up": [], "noop preview": []}
    requests_per_attach: list[float] = []
    with tempfile.TemporaryDirectory(prefix="zstack-iso-bench-") as tmp:
        real = CliProject(cli, Path(tmp) / "real", _attachments_program(pairs), config)
        noop = CliProject(cli, Path(tmp) / "noop", NOOP_PROGRAM, {})
        for _ in range(suite.runs):
            sim.reset()
            sim.config(jobSeconds=JOB)
            sim.clear_journal()
            walls["up"].append(timed(lambda: real.run("up", "--yes", "--skip-preview"))[0])
            counters = sim.counters()
            if counters["jobs"] != len(pairs):
                raise RuntimeError(f"{counters['jobs']} attach jobs for {len(pairs)} attachments")
            requests_per_attach.append(counters["requests"] / len(pairs))
            walls["preview"].append(timed(lambda: real.run("preview"))[0])
            sim.config(jobSeconds=0.0)
            real.run("destroy", "--yes", "--skip-preview")
            sim.config(jobSeconds=JOB)
            walls["up wide"].append(timed(lambda: real.run("up", "--yes", "--skip-preview", f"--parallel={WIDE}"))[0])
            sim.config(jobSeconds=0.0)
            real.run("destroy", "--yes", "--skip-preview")
            walls["noop up"].append(timed(lambda: noop.run("up", "--yes", "--skip-preview"))[0])
            walls["noop preview"].append(timed(lambda: noop.run("preview"))[0])
            noop.run("destroy", "--yes", "--skip-preview")
    fixed_up, fixed_preview = median(walls["noop up"]), median(walls["noop preview"])
    up, wide, preview = median(walls["up"]), median(walls["up wide"]), median(walls["preview"])
    parallel = 4 * (os.cpu_count() or 1)
    rounds = -(-len(pairs) // parallel) * JOB  # the CLI's own bound: 48 Creates, `parallel` at a time
    rows = [
        (f"`pulumi up`, 48 IsoAttachments / 16 VMs, jobs 0.3 s, CLI default --parallel {parallel}", up,
         f"ideal {secs(ideal)}, {parallel}-at-once bound {secs(rounds)}, + CLI {secs(fixed_up)}",
         times((up - fixed_up) / ideal) + " ideal (less CLI)", f"{median(requests_per_attach):.1f}/attachment"),
        (f"`pulumi up --parallel {WIDE}`, the same 48", wide, f"ideal {secs(ideal)} + CLI {secs(fixed_up)}",
         times((wide - fixed_up) / ideal) + " ideal (less CLI)", ""),
        ("`pulumi preview` of those 48 (48 Diffs)", preview, f"CLI {secs(fixed_preview)}",
         times(preview / fixed_preview) + " CLI alone", ""),
        ("CLI fixed cost: `pulumi up`, 48 no-op dynamic resources", fixed_up, "", "", ""),
        ("CLI fixed cost: `pulumi preview`, 48 no-op dynamic resources", fixed_preview, "", "", ""),
    ]  # fmt: skip
    for case, wall, reference, ratio, requests in rows:
        suite.rows.append(Row("6 real CLI", case, secs(wall), reference, ratio, requests))
    log(f"  cli: up {secs(up)}, up --parallel {WIDE} {secs(wide)}, preview {secs(preview)}")
    log(f"  cli: fixed cost up {secs(fixed_up)}, preview {secs(fixed_preview)}")


if __name__ == "__main__":
    standalone(run, default_runs=3)
