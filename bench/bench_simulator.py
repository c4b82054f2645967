"""Benchmark of the ZStack simulator: single-VM queries per second from one keep-alive client, and 200 concurrent
connections held open and served.

    .venv/bin/python bench/bench_simulator.py [--seconds 2] [--runs 5] [--connections 200]

The simulator runs in its own process (`run_simulator(process=True)`: `python -m zstack_iso.simulator`), as a
user runs it, so the client does not share its interpreter. Prints the median and spread of each figure.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import socket
import statistics
import time
from urllib.parse import urlsplit

import requests

from zstack_iso.simulator import run_simulator


def login(url: str) -> tuple[str, str]:
    body = {"logInByAccount": {"accountName": "admin", "password": hashlib.sha512(b"password").hexdigest()}}
    session = requests.put(f"{url}/zstack/v1/accounts/login", json=body, timeout=5).json()["inventory"]["uuid"]
    vms = requests.get(f"{url}/_simulator/inventory", timeout=5).json()["vmInstances"]
    return session, next(v["uuid"] for v in vms if v["name"] == "web-1")


def queries_per_second_http_client(url: str, session: str, vm: str, seconds: float) -> float:
    """One http.client connection (HTTP/1.1 keep-alive), back-to-back GET vm-instances/{uuid}."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Authorization": f"OAuth {session}"}
    done = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        conn.request("GET", f"/zstack/v1/vm-instances/{vm}", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200 or b"web-1" not in body:
            raise SystemExit(f"bad answer {resp.status}: {body[:200]!r}")
        done += 1
    conn.close()
    return done / (time.perf_counter() - started)


def queries_per_second_requests(url: str, session: str, vm: str, seconds: float) -> float:
    """The same with a requests.Session (what the project's client uses): includes requests' own overhead."""
    http = requests.Session()
    headers = {"Authorization": f"OAuth {session}"}
    done = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        r = http.get(f"{url}/zstack/v1/vm-instances/{vm}", headers=headers, timeout=10)
        if r.status_code != 200:
            raise SystemExit(f"bad answer {r.status_code}: {r.text[:200]}")
        done += 1
    http.close()
    return done / (time.perf_counter() - started)


def hold_connections(url: str, session: str, vm: str, count: int) -> dict[str, float]:
    """Open `count` connections, serve a query on each (all in flight at once), then a second round on the same
    connections to prove they were held open (HTTP/1.1 keep-alive)."""
    parts = urlsplit(url)
    request = (
        f"GET /zstack/v1/vm-instances/{vm} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: OAuth {session}\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    socks = [socket.create_connection((parts.hostname, parts.port), timeout=30) for _ in range(count)]
    opened = time.perf_counter() - started
    rounds = []
    for _ in range(2):
        t0 = time.perf_counter()
        for s in socks:
            s.sendall(request)  # every connection has a request in flight before any answer is read
        ok = sum(_read_response(s) == 200 for s in socks)
        rounds.append(time.perf_counter() - t0)
        if ok != count:
            raise SystemExit(f"only {ok} of {count} connections answered 200")
    for s in socks:
        s.close()
    return {"open_s": opened, "round1_s": rounds[0], "round2_s": rounds[1]}


def _read_response(sock: socket.socket) -> int:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return status


def fmt(values: list[float]) -> str:
    return f"median {statistics.median(values):8.1f}  min {min(values):8.1f}  max {max(values):8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one query run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    with run_simulator(port=0, job_seconds=0.05, process=True) as simulator:
        url = simulator.url
        session, vm = login(url)
        print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(f"simulator: {url} (separate process), query: GET /zstack/v1/vm-instances/{{uuid}}\n")
        raw = [queries_per_second_http_client(url, session, vm, args.seconds) for _ in range(args.runs)]
        req = [queries_per_second_requests(url, session, vm, args.seconds) for _ in range(args.runs)]
        print(f"queries/s, one keep-alive client (http.client): {fmt(raw)}")
        print(f"queries/s, one keep-alive client (requests):    {fmt(req)}")
        print(f"ratio to the 500/s target (http.client median):  {statistics.median(raw) / 500:.1f}x")
        held = [hold_connections(url, session, vm, args.connections) for _ in range(3)]
        print(
            f"\n{args.connections} concurrent connections, each with a query in flight, held for a second round:\n"
            f"  open all: median {statistics.median(h['open_s'] for h in held) * 1000:.0f} ms; "
            f"round 1: median {statistics.median(h['round1_s'] for h in held) * 1000:.0f} ms; "
            f"round 2 (same sockets): median {statistics.median(h['round2_s'] for h in held) * 1000:.0f} ms; "
            f"all {args.connections} answered 200 in every round"
        )
        journal = requests.get(f"{url}/_simulator/journal", timeout=5).json()["counters"]
        print(f"\njournal counters: {json.dumps(journal)}")


if __name__ == "__main__":
    main()
