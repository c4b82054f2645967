"""`python -m zstack_iso.simulator`: serve the simulated ZStack API until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

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
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.tls_key and not args.tls_cert:
        print("--tls-key needs --tls-cert", file=sys.stderr)
        return 2
    try:
        sim = Simulator(
            args.host,
            args.port,
            args.seed,
            args.state,
            args.job_seconds,
            args.latency_ms,
            args.tls_cert,
            args.tls_key,
            session_timeout_seconds=args.session_timeout,
            log_requests=not args.quiet,
            strict_attach=args.strict_attach,
        )
    except (SeedError, OSError, ValueError) as exc:
        print(f"cannot start the ZStack simulator: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sim.start()
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
        print("ZStack simulator stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
