"""Performance benchmarks of zstack-iso, run through the SDK's own provider host against the simulator.

`python -m bench` (what `make bench` runs) runs the whole suite and prints one table; each `bench_<thing>.py`
module also runs alone (`python -m bench.bench_attach --runs 3`). Benchmarks, not tests: they assert nothing
about timing, they measure and report medians and ratios taken in the same run.
"""
