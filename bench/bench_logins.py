"""Benchmark 2: 100 operations through one provider host log in exactly once.

A fresh host (its process has no session yet) after a simulator reset (which also forgets every session)
runs 25 attachments through their whole life, create, diff, read and delete: 100 operations. The 25 lives
run side by side, so the first calls race for the session: the session cache must let only one of them
log in. The journal's `logins` counter is the figure; target exactly 1.
"""

from __future__ import annotations

from bench.harness import TYPE, Row, Suite, log, provider_host, standalone, timed
from devkit import run_concurrently

LIVES = 25  # 4 operations each
RUNS = 3  # a count, not a timing: three fresh hosts are enough to catch a login race


def run(suite: Suite) -> None:
    sim, fleet = suite.sim, suite.fleet
    logins, requests, walls = [], [], []
    for _ in range(RUNS):
        sim.reset()  # no session left on the node
        sim.config(jobSeconds=0.02)
        with provider_host(sim.url) as host:
            sim.clear_journal()

            def life(vm: str, host=host) -> int:
                props = {"vm_uuid": vm, "iso_uuid": fleet.isos[0]}
                id_, outputs = host.create(props, name=vm, type_=TYPE)
                host.diff(id_, outputs, props, props, name=vm, type_=TYPE)
                host.read(id_, outputs, props, name=vm, type_=TYPE)
                host.delete(id_, outputs, props, name=vm, type_=TYPE)
                return 4

            wall, done = timed(lambda: run_concurrently([lambda v=vm: life(v) for vm in fleet.empty_vms[:LIVES]]))
            failed = [d for d in done if isinstance(d, BaseException)]
            if failed:
                raise RuntimeError(f"{len(failed)} of {LIVES} attachment lives failed: {failed[0]}")
            counters = sim.counters()
            logins.append(counters["logins"])
            requests.append(counters["requests"])
            walls.append(wall)
    operations = LIVES * 4
    worst = max(logins)
    suite.rows.append(
        Row(
            "2 logins",
            f"{operations} operations (25 × create, diff, read, delete), fresh host, {RUNS} hosts",
            f"{worst} login" + ("" if worst == 1 else "s"),
            "= 1",
            "",
            f"{sorted(requests)[RUNS // 2] / operations:.1f}/operation",
            "meets target" if all(n == 1 for n in logins) else f"MISSES target (logins per host: {logins})",
        )
    )
    log(f"  logins: {logins} for {operations} operations per host")


if __name__ == "__main__":
    standalone(run, default_runs=RUNS)
