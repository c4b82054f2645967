"""More threads for the SDK's provider host, so that a wide stack is not held to 4 operations at once.

`python -m pulumi.dynamic` (the host every Pulumi CLI starts for dynamic providers) serves its gRPC calls from
`ThreadPoolExecutor(max_workers=4)`, fixed in `pulumi/dynamic/__main__.py` with no option to change it. An
attach holds a thread for its whole job, so 48 attachments over 16 VMs take 12 rounds of one job instead of 3
(ZStack runs one job per VM at a time, §10). The provider runs inside that host process, so it can raise the
pool's limit itself: the executor grows threads on demand up to `_max_workers`.

This leans on two private details of the SDK and of grpcio: the host's `main()` frame holds its server as
`server`, and a grpc server keeps its executor at `_state.thread_pool`. `widen()` checks both and, when either
is missing (a new SDK), leaves the pool as it is and says why: the host then works as it always has.
`tests/provider/test_host_pool.py` fails loudly when the installed SDK no longer has that shape.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

SDK_HOST_MODULE = "pulumi/dynamic/__main__.py"
NOT_THE_SDK_HOST = "this process is not the SDK's provider host (python -m pulumi.dynamic)"

_lock = threading.Lock()


def host_executor() -> tuple[ThreadPoolExecutor | None, str]:
    """The SDK provider host's gRPC executor in this process, or None and the reason it was not found."""
    frame = _host_main_frame()
    if frame is None:
        return None, NOT_THE_SDK_HOST
    server = frame.f_locals.get("server")
    if server is None:
        return None, "the provider host's main() has no `server` (the Pulumi SDK changed)"
    pool: Any = getattr(getattr(server, "_state", None), "thread_pool", None)
    if not isinstance(pool, ThreadPoolExecutor) or not isinstance(getattr(pool, "_max_workers", None), int):
        return None, f"the provider host's server keeps no thread pool where grpcio did ({type(server).__name__})"
    return pool, ""


def widen(workers: int) -> str | None:
    """Let the provider host run up to `workers` calls at once (never fewer than it already does).
    Returns None when done, else why the stock pool stays."""
    with _lock:
        pool, why = host_executor()
        if pool is None:
            return why
        if not all(hasattr(pool, name) for name in ("_idle_semaphore", "_threads", "_adjust_thread_count")):
            return "the provider host's thread pool is not a ThreadPoolExecutor of the kind this knows (Python?)"
        pool._max_workers = max(pool._max_workers, workers)  # noqa: SLF001 the reason this module exists
        _start_threads(pool)
        return None


def _start_threads(pool: ThreadPoolExecutor) -> None:
    """Start every thread now. The executor starts one only when its idle semaphore has no permit left, and
    each finished call adds one (even when its thread then takes more work): after a handful of calls it would
    never go past the threads it already has."""
    while pool._idle_semaphore.acquire(timeout=0):  # noqa: SLF001
        pass
    for _ in range(2 * pool._max_workers):  # noqa: SLF001 bounded: each round starts a thread or takes a permit
        if len(pool._threads) >= pool._max_workers:  # noqa: SLF001
            return
        pool._adjust_thread_count()  # noqa: SLF001


def current_limit() -> int | None:
    pool, _ = host_executor()
    return None if pool is None else pool._max_workers  # noqa: SLF001


def _host_main_frame() -> FrameType | None:
    """The frame of `main()` in the SDK's `pulumi/dynamic/__main__.py`, still running in the main thread."""
    main_thread = threading.main_thread().ident
    frame = sys._current_frames().get(main_thread) if main_thread is not None else None  # noqa: SLF001
    while frame is not None:
        code = frame.f_code
        if code.co_name == "main" and code.co_filename.replace("\\", "/").endswith(SDK_HOST_MODULE):
            return frame
        frame = frame.f_back
    return None
