"""MEASUREMENT ONLY: the SDK's provider host (`python -m pulumi.dynamic`) with a larger gRPC thread pool.

The SDK host serves at most 4 calls at once (`ThreadPoolExecutor(max_workers=4)` in
`pulumi/dynamic/__main__.py`, with no option or environment variable to change it). This launcher runs the
very same module with every thread pool created in the process widened to BENCH_HOST_WORKERS (default 64),
so that the suite can show what the fixed pool costs. It is a monkey-patch of the standard library: nothing in
the provider or the example program uses it, and it must never be shipped as a way to run the provider.

    python -u -m bench.wide_host   # what ProviderHost(module="bench.wide_host") starts
"""

from __future__ import annotations

import concurrent.futures
import os
import runpy
from typing import Any

WORKERS = int(os.environ.get("BENCH_HOST_WORKERS", "64"))
_SdkPool = concurrent.futures.ThreadPoolExecutor


class _WidePool(_SdkPool):
    def __init__(self, max_workers: int | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(max(WORKERS, max_workers or 0), *args, **kwargs)


concurrent.futures.ThreadPoolExecutor = _WidePool  # type: ignore[misc]
runpy.run_module("pulumi.dynamic", run_name="__main__", alter_sys=True)
