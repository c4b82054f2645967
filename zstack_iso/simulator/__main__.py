"""`python -m zstack_iso.simulator`: serve the simulated ZStack API until SIGTERM or Ctrl-C, or, with
`--background`, start it in a process of its own, wait until it listens and return."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .process import SimulatorProcess, SimulatorStartError
from .seed import SeedError
from .server import Simulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m zstack_iso.simulator",
        description="A local, wire-faithful ZStack management node for the ISO attach/detach surface.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8080, help="port (0 picks a free one; default 8080)")
    p.add_argument("--seed", help="seed file replacing the default inventory (see default_seed.json)")
    p.add_argument("--state", help="state file: the state survives restarts (written atomically)")
    p.add_argument("--job-seconds", type=float, default=1.0, help="duration of every async job (default 1)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every ZStack API request")
    p.add_argument("--session-timeout", type=int, default=7200, help="session timeout in seconds (default 7200)")
    p.add_argument(
        "--strict-attach",
        action="store_true",
        help="refuse an ISO that is not Enabled and Ready, and a cdromUuid:: tag naming another VM's CD-ROM, which "
        "the open-source node accepts (the control API's strictAttach config)",
    )
    p.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--quiet", action="store_true", help="no request log on stderr")
    p.add_argument(
        "--pid-file",
        help="write the process id here while it runs (removed when it stops); if the process it names is alive, "
        "do not start a second one",
    )
    p.add_argument(
        "--background",
        action="store_true",
        help="start in a process of its own, wait until it listens, print its URL and pid, and return (needs "
        "--log-file; stop it with SIGTERM, e.g. kill $(cat PID_FILE))",
    )
    p.add_argument("--log-file", help="with --background: where its output goes, the URL line first (appended)")
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """`run_simulator`'s arguments from the command line's."""
    return {
        "host": args.host,
        "port": args.port,
        "seed": args.seed,
        "state_file": args.state,
        "job_seconds": args.job_seconds,
        "latency_ms": args.latency_ms,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "session_timeout_seconds": args.session_timeout,
        "log_requests": not args.quiet,
        "strict_attach": args.strict_attach,
    }


def _running(pid_file: str | None) -> int | None:
    """The pid in pid_file if that process is alive."""
    try:
        pid = int(Path(pid_file).read_text().strip()) if pid_file else 0
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return pid


def _background(args: argparse.Namespace) -> int:
    process = SimulatorProcess(**_settings(args), pid_file=args.pid_file, log_file=args.log_file, detach=True)
    try:
        process.start()
    except SimulatorStartError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"ZStack simulator listening on {process.url} (pid {process.pid}, log {args.log_file})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.tls_key and not args.tls_cert:
        print("--tls-key needs --tls-cert", file=sys.stderr)
        return 2
    if args.background != bool(args.log_file):
        print("--background and --log-file go together", file=sys.stderr)
        return 2
    running = _running(args.pid_file)
    if running is not None:
        # Starting one in the background is done when one runs; running a second in the foreground is a mistake.
        out = sys.stdout if args.background else sys.stderr
        print(f"ZStack simulator already running (pid {running}, from {args.pid_file})", file=out)
        return 0 if args.background else 1
    if args.background:
        return _background(args)
    try:
        sim = Simulator(**_settings(args))
    except (SeedError, OSError, ValueError) as exc:
        print(f"cannot start the ZStack simulator: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sim.start()
    if args.pid_file:
        Path(args.pid_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.pid_file).write_text(f"{os.getpid()}\n")
    print(f"ZStack simulator listening on {sim.url}", flush=True)
    print(f"ZStack API: {sim.url}/zstack/v1  control API: {sim.url}/_simulator", flush=True)
    if sim.node.access_keys:
        key_id, secret = sim.node.default_access_key
        # the default seed's key is public (it ships in the package); a user's own seed secret is never printed
        shown = secret if args.seed is None else "(in the seed file)"
        print(f"AccessKey of the seed's first account: id={key_id} secret={shown}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        if args.pid_file and _running(args.pid_file) == os.getpid():
            with contextlib.suppress(OSError):
                Path(args.pid_file).unlink()
        print("ZStack simulator stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
