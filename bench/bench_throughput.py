"""Benchmark 3: throughput, 48 attachments over 16 VMs, all 48 Creates in flight at once, jobs of 0.3 s.

The ideal schedule: ZStack runs one VM's jobs one at a time (§10) and different VMs in parallel, so 3 jobs
per VM take 3 × 0.3 s = 0.9 s. The SDK's provider host serves at most 4 calls at once unless the provider
widens its pool (zstack:maxConcurrency), so a Create that
waits for its job holds one of 4 threads: the bound is 48 / 4 × 0.3 s = 3.6 s, and worse when the queue
holds several Creates of one VM next to each other (a program that loops over VMs, then ISOs, declares them
so), because those wait for each other while holding threads.

Cases: the SDK host held to its own 4 threads (zstack:maxConcurrency=4) and widened by the provider
(zstack_iso/host_pool.py) to 16, 32, 48 and the default (64), in VM-major and round-robin order. Every run starts
a new host, as every `pulumi up` does: the client learns job durations afresh (zstack_iso/client/durations.py),
so the first Creates of a deployment poll on the adaptive schedule and the later ones around what they taught.
Besides the wall time: the node's requests per attachment and per second of the fan-out (every request the
simulator answered, over the fan-out's wall time). Also records the hosts' peak memory (VmHWM) for benchmark 5.
"""

from __future__ import annotations

import math

from bench.harness import (
    Row,
    Suite,
    create_all,
    delete_all,
    log,
    median,
    provider_host,
    secs,
    standalone,
    timed,
    times,
    warm_up,
)
from zstack_iso.config import DEFAULT_MAX_CONCURRENCY

VMS = 16
JOB = 0.3
CASES: tuple[tuple[str, int | None, str], ...] = (
    ("maxConcurrency 4 (the SDK's own pool), VM-major", 4, "vm-major"),
    ("maxConcurrency 4 (the SDK's own pool), round-robin", 4, "round-robin"),
    ("maxConcurrency 16, VM-major", 16, "vm-major"),
    ("maxConcurrency 16, round-robin", 16, "round-robin"),
    ("maxConcurrency 32, VM-major", 32, "vm-major"),
    ("maxConcurrency 48, VM-major", 48, "vm-major"),
    (f"default maxConcurrency ({DEFAULT_MAX_CONCURRENCY}), VM-major", None, "vm-major"),
    (f"default maxConcurrency ({DEFAULT_MAX_CONCURRENCY}), round-robin", None, "round-robin"),
)


def run(suite: Suite) -> None:
    sim, fleet = suite.sim, suite.fleet
    vms = fleet.empty_vms[:VMS]
    by_vm = [{"vm_uuid": vm, "iso_uuid": iso} for vm in vms for iso in fleet.isos]
    orders = {"vm-major": by_vm, "round-robin": [by_vm[v * 3 + i] for i in range(3) for v in range(VMS)]}
    attachments = len(by_vm)
    ideal = len(fleet.isos) * JOB
    bound = math.ceil(attachments / 4) * JOB
    sim.reset()
    for case, concurrency, order in CASES:
        walls, per_attachment, per_second, logins, idle, peak = [], [], [], 0, [], 0
        for _ in range(suite.runs):
            with provider_host(sim.url, max_concurrency=concurrency) as host:
                warm_up(host, sim, fleet.empty_vms[VMS], fleet.isos[0])  # a VM outside the 16
                idle.append(host.memory()["rss"])
                sim.config(jobSeconds=JOB)
                sim.clear_journal()
                wall, outputs = timed(lambda h=host, o=order: create_all(h, orders[o]))
                counters = sim.counters()
                walls.append(wall)
                per_attachment.append(counters["requests"] / attachments)
                per_second.append(counters["requests"] / wall)
                logins += counters["logins"]
                if counters["jobs"] != attachments:
                    raise RuntimeError(f"{counters['jobs']} attach jobs for {attachments} Creates")
                sim.config(jobSeconds=0.0)
                delete_all(host, outputs)
                peak = max(peak, host.memory()["peak_rss"])
        suite.facts.setdefault("memory", []).append((case, median(idle), peak))
        wall = median(walls)
        reference = f"ideal {secs(ideal)}" + (f", 4-thread bound {secs(bound)}" if concurrency == 4 else "")
        suite.rows.append(
            Row(
                "3 throughput",
                f"48 Creates / 16 VMs, jobs {JOB:g} s: {case}",
                secs(wall),
                reference,
                f"{times(median([w / ideal for w in walls]))} ideal",
                f"{median(per_attachment):.1f}/attachment, {median(per_second):.0f}/s",
                "" if logins == 0 else f"{logins} logins!",
            )
        )
        log(
            f"  throughput, {case}: {secs(wall)} (ideal {secs(ideal)}), {median(per_attachment):.1f} requests per "
            f"attachment, {median(per_second):.0f} per second, peak RSS {peak / 2**20:.0f} MiB"
        )


if __name__ == "__main__":
    standalone(run, default_runs=3)
