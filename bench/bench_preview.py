"""Benchmark 4: a preview of 100 unchanged attachments (3 per VM over 34 VMs): 100 Diff calls at once.

Every Diff of an unchanged attachment reads its VM live, to show drift without `--refresh`. The target (issue
11, goal 3) is one read per VM (34) whatever order the engine asks in: one read of a VM serves each of its
attachments once (runtime.py `SharedReads`), and the next run's Diff of an attachment reads afresh, so every run
through the same host pays its reads again. Cases: VM-major order (the order a program that loops over VMs
declares them) and round-robin order, with no latency and with 10 ms per request (a remote management node),
through the SDK host held to its own 4 threads and with the provider's default pool (zstack:maxConcurrency).
Reads are the journal's `GET /vm-instances/...` requests.
"""

from __future__ import annotations

from pulumi.runtime.proto import provider_pb2

from bench.harness import (
    Row,
    Suite,
    diff_all,
    log,
    median,
    ms,
    provider_host,
    standalone,
    timed,
    times,
    warm_up,
)

ATTACHMENTS = 100
CASES: tuple[tuple[str, int | None, str, float], ...] = (
    ("maxConcurrency 4, VM-major, 0 ms latency", 4, "vm-major", 0.0),
    ("maxConcurrency 4, VM-major, 10 ms latency", 4, "vm-major", 10.0),
    ("maxConcurrency 4, round-robin, 10 ms latency", 4, "round-robin", 10.0),
    ("default maxConcurrency, VM-major, 10 ms latency", None, "vm-major", 10.0),
    ("default maxConcurrency, round-robin, 10 ms latency", None, "round-robin", 10.0),
)


def _reads(journal: dict) -> int:
    return sum(1 for r in journal["requests"] if r["method"] == "GET" and r["path"].startswith("/zstack/v1/vm-in"))


def run(suite: Suite) -> None:
    sim, fleet = suite.sim, suite.fleet
    vm_major = fleet.attached(ATTACHMENTS)
    per_vm: dict[str, list[dict]] = {}
    for outputs in vm_major:
        per_vm.setdefault(outputs["vm_uuid"], []).append(outputs)
    round_robin = [group[i] for i in range(3) for group in per_vm.values() if i < len(group)]
    vms = len(per_vm)
    orders = {"vm-major": vm_major, "round-robin": round_robin}
    sim.reset()  # the seed's attachments, nothing else
    for case, concurrency, order, latency in CASES:
        walls, reads, total = [], [], []
        with provider_host(sim.url, max_concurrency=concurrency) as host:
            warm_up(host, sim, fleet.empty_vms[0], fleet.isos[0])
            sim.config(latencyMs=latency)
            for _ in range(suite.runs):
                sim.clear_journal()
                wall, answers = timed(lambda h=host, o=order: diff_all(h, orders[o]))
                journal = sim.journal()
                changed = [a for a in answers if a.changes != provider_pb2.DiffResponse.DIFF_NONE]
                if changed:
                    raise RuntimeError(f"{len(changed)} Diffs of unchanged attachments reported changes")
                walls.append(wall)
                reads.append(_reads(journal))
                total.append(journal["counters"]["requests"])
            sim.config(latencyMs=0.0)
        read = median(reads)
        suite.rows.append(
            Row(
                "4 preview",
                f"100 Diffs / 34 VMs: {case}",
                ms(median(walls)),
                f"≤ {vms} reads (1 per VM)",
                f"{times(read / vms)} target",
                f"{read:.0f} reads, {median(total):.0f} total",
                "meets target" if read <= vms else "MISSES target",
            )
        )
        log(f"  preview, {case}: {ms(median(walls))}, {read:.0f} reads")


if __name__ == "__main__":
    standalone(run, default_runs=3)
