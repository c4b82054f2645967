"""`python -m bench` (`make bench`): the whole suite on one simulator, then one table on stdout.

    .venv/bin/python -m bench [--runs N] [--only attach,logins,throughput,preview,cold_start,cli]
                              [--simulator subprocess|inprocess]

Progress goes to stderr. `--runs` overrides every benchmark's number of runs (attach 5, the others 3).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone

from bench import bench_attach, bench_cli, bench_cold_start, bench_logins, bench_preview, bench_throughput
from bench.harness import Suite, build_fleet, log, machine, render, simulator
from devkit import PROJECT_ROOT

# Order matters: cold_start reports the peak memory that throughput records.
BENCHMARKS: dict[str, tuple[Callable[[Suite], None], int]] = {
    "attach": (bench_attach.run, 5),
    "logins": (bench_logins.run, bench_logins.RUNS),
    "throughput": (bench_throughput.run, 3),
    "preview": (bench_preview.run, 3),
    "cold_start": (bench_cold_start.run, 3),
    "cli": (bench_cli.run, 3),
}


def _revision() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "zstack_iso"], cwd=PROJECT_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return sha + (" (zstack_iso has uncommitted changes)" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="runs per case for every benchmark (default: each one's own)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset, in suite order")
    parser.add_argument("--simulator", choices=("subprocess", "inprocess"), default="subprocess")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    started = time.monotonic()
    fleet = build_fleet()
    with simulator(fleet.seed, args.simulator) as sim:
        suite = Suite(sim, fleet, runs=0)
        for name in (n for n in BENCHMARKS if n in chosen):
            run, default_runs = BENCHMARKS[name]
            suite.runs = args.runs or default_runs
            log(f"{name}: {suite.runs} run(s)")
            run(suite)
    rows = suite.rows
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"zstack-iso benchmarks, {when}, {machine()}, {_revision()}, simulator: {args.simulator}")
    print()
    print(render(rows))
    if suite.notes:
        print()
        for note in suite.notes:
            print(f"Note {note}")
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
