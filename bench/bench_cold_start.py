"""Benchmark 5: cold start, from starting the provider host to the first Create answered, minus the job.

What `pulumi up` pays once per deployment: the interpreter starts, imports the SDK host and gRPC, prints its
port; the engine configures it; the first Create unpickles the provider (importing zstack_iso, requests and
pydantic), builds the client, logs in, and attaches. Each run starts a fresh host with jobs of 0.3 s; the
same host's second Create (warm) is the comparison. The import floors are timed as bare interpreters
importing the SDK host's modules, and the provider's on top. Peak memory comes from benchmark 3's hosts.
"""

from __future__ import annotations

import subprocess
import sys

from bench.harness import TYPE, Row, Suite, log, median, ms, provider_host, standalone, timed, times
from devkit import PROJECT_ROOT

JOB = 0.3
SDK_IMPORTS = "import grpc, dill, pulumi.dynamic, pulumi.runtime.proto.provider_pb2_grpc"
PROVIDER_IMPORTS = SDK_IMPORTS + "; import zstack_iso.provider"


def _interpreter(code: str) -> float:
    """Spawn to imports done; os._exit skips the interpreter's teardown, which a host never reaches."""
    command = [sys.executable, "-c", code + "; import os; os._exit(0)"]
    wall, _ = timed(lambda: subprocess.run(command, cwd=PROJECT_ROOT, check=True))
    return wall


def run(suite: Suite) -> None:
    sim, fleet = suite.sim, suite.fleet
    sim.reset()
    cold, spawn, warm = [], [], []
    for run_index in range(suite.runs):
        vm = fleet.empty_vms[run_index]
        sim.config(jobSeconds=JOB)
        host = provider_host(sim.url)
        try:
            wall, (id_, outputs) = timed(
                lambda h=host, v=vm: h.start().create({"vm_uuid": v, "iso_uuid": fleet.isos[0]}, type_=TYPE)
            )
            cold.append(wall - JOB)
            spawn.append(host.startup_seconds or 0.0)
            second, (id2, outputs2) = timed(lambda h=host, v=vm: h.create({"vm_uuid": v, "iso_uuid": fleet.isos[1]}))
            warm.append(second - JOB)
            sim.config(jobSeconds=0.0)
            host.delete(id_, outputs)
            host.delete(id2, outputs2)
        finally:
            host.stop()
    sdk = median([_interpreter(SDK_IMPORTS) for _ in range(suite.runs)])
    provider = median([_interpreter(PROVIDER_IMPORTS) for _ in range(suite.runs)])
    suite.rows += [
        Row(
            "5 cold start",
            "host start → first Create answered, minus the 0.3 s job",
            ms(median(cold)),
            f"warm: {ms(median(warm))}",
            f"{times(median(c / w for c, w in zip(cold, warm, strict=True) if w > 0))} warm",
        ),
        Row("5 cold start", "… of which: spawn → gRPC port ready (SDK host)", ms(median(spawn))),
        Row("5 cold start", "floor: bare interpreter importing the SDK host's modules", ms(sdk)),
        Row("5 cold start", "floor: … plus zstack_iso.provider (requests, pydantic)", ms(provider)),
    ]
    for case, idle, peak in suite.facts.get("memory", []):
        suite.rows.append(
            Row(
                "5 memory",
                f"host peak RSS in benchmark 3: {case}",
                f"{peak / 2**20:.0f} MiB",
                f"idle {idle / 2**20:.0f} MiB",
            )
        )
    log(f"  cold start: {ms(median(cold))} over the job (warm {ms(median(warm))})")


if __name__ == "__main__":
    standalone(run, default_runs=3)
