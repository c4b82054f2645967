"""Client-level attach overhead: adaptive polling against the SDKs' fixed 1 s and 2 s intervals.

Runs an in-process simulator, sets its job duration, and times ZStackClient.attach_iso (submit + polls)
for each policy. Overhead = wall time - job duration; target: <= max(10 % of the job, 30 ms).
Also counts the HTTP requests per attach from the simulator's journal.

    .venv/bin/python bench/bench_client.py [--runs 5] [--jobs 0.05,0.3,1.0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests

from zstack_iso.client import ZStackClient
from zstack_iso.simulator import run_simulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", default="0.05,0.3,1.0")
    args = parser.parse_args()
    jobs = [float(j) for j in args.jobs.split(",")]
    policies: list[tuple[str, float | None]] = [("adaptive", None), ("fixed 1 s", 1.0), ("fixed 2 s", 2.0)]

    with run_simulator(port=0, job_seconds=jobs[0]) as sim:
        control = requests.Session()
        with ZStackClient(sim.url, account_name="admin", account_password="password") as probe:
            vm_uuid = probe.query_vms(name="web-1")[0].uuid
            iso_uuid = probe.query_images(name="rescue.iso")[0].uuid
        print(f"{'job':>7} | {'policy':<10} | {'median wall':>11} | {'overhead':>9} | {'target':>7} | "
              f"{'ok':<3} | {'req/attach':>10} | {'vs adaptive':>11}")  # fmt: skip
        for job in jobs:
            control.put(f"{sim.url}/_simulator/config", json={"jobSeconds": job}, timeout=10)
            target = max(0.1 * job, 0.030)
            adaptive_overhead = None
            for name, interval in policies:
                with ZStackClient(
                    sim.url, account_name="admin", account_password="password", poll_interval=interval
                ) as client:
                    client.get_vm(vm_uuid)  # log in outside the measurement
                    walls, requests_per = [], []
                    for _ in range(args.runs):
                        control.delete(f"{sim.url}/_simulator/journal", timeout=10)
                        started = time.perf_counter()
                        client.attach_iso(vm_uuid, iso_uuid)
                        walls.append(time.perf_counter() - started)
                        journal = control.get(f"{sim.url}/_simulator/journal", timeout=10).json()
                        requests_per.append(journal["counters"]["requests"])
                        client.detach_iso(vm_uuid, iso_uuid)
                wall = statistics.median(walls)
                overhead = wall - job
                adaptive_overhead = adaptive_overhead if adaptive_overhead is not None else overhead
                ratio = overhead / adaptive_overhead if adaptive_overhead > 0 else float("inf")
                ok = "yes" if overhead <= target else "no"
                print(
                    f"{job:>6.2f}s | {name:<10} | {wall * 1000:>9.1f}ms | {overhead * 1000:>7.1f}ms | "
                    f"{target * 1000:>5.0f}ms | {ok:<3} | {statistics.median(requests_per):>10.0f} | "
                    f"{ratio:>10.1f}x"
                )


if __name__ == "__main__":
    main()
