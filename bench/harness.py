"""What every benchmark shares: a simulator with a fleet of VMs, its control API, provider hosts, and the table.

The simulator runs as its own process by default (`run_simulator(process=True)`), so that the benchmark's
many client threads do not share an interpreter lock with the node they measure; `--simulator inprocess`
runs it in a thread of the benchmark's process instead. Job duration and latency are set through the control API, and
requests and logins are counted from its journal.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from devkit import PROVIDER_KEY, ProviderHost, SimCtl
from zstack_iso.provider import IsoAttachmentProvider
from zstack_iso.simulator import DEFAULT_SEED_PATH, run_simulator

# The three ISOs of the default seed that ZStack accepts (Enabled, Ready).
USABLE_ISOS = ("ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso", "rescue.iso")
EMPTY_VMS = 25  # 3 empty CD-ROMs each: attach targets (throughput uses 16, logins 25)
FULL_VMS = 34  # 3 CD-ROMs holding the 3 usable ISOs: the preview's 100 attachments
SPARE_ISOS = 12  # extra ISOs, so that repeated runs never reuse a (VM, ISO) pair in one provider process
TYPE = "pulumi-python:dynamic/zstack:IsoAttachment"


def log(message: str) -> None:
    """Progress on stderr, so that stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)


def bench_uuid(*parts: str) -> str:
    """A deterministic ZStack-style UUID (32 hex) for a seeded benchmark resource."""
    return hashlib.md5("/".join(("bench", *parts)).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- the fleet


@dataclass(frozen=True)
class Fleet:
    """The seed and the UUIDs the benchmarks use."""

    seed: dict[str, Any]
    empty_vms: list[str]
    full_vms: list[str]
    isos: list[str]  # the usable ISOs of the default seed, in USABLE_ISOS order
    spare_isos: list[str]
    cdroms: dict[str, list[str]]  # VM -> CD-ROM UUIDs by device id

    def attached(self, count: int) -> list[dict[str, Any]]:
        """The outputs of `count` attachments that the seed already holds (VM-major order)."""
        out = []
        for vm in self.full_vms:
            for device_id, iso in enumerate(self.isos):
                cdrom = self.cdroms[vm][device_id]
                out.append({"vm_uuid": vm, "iso_uuid": iso, "cdrom_uuid": cdrom, "device_id": device_id})
        return out[:count]


def build_fleet(empty_vms: int = EMPTY_VMS, full_vms: int = FULL_VMS, spare_isos: int = SPARE_ISOS) -> Fleet:
    """The default seed plus `empty_vms` VMs with 3 empty CD-ROMs, `full_vms` VMs whose 3 CD-ROMs hold the
    three usable ISOs, and `spare_isos` more ISOs."""
    seed = json.loads(Path(DEFAULT_SEED_PATH).read_text())
    by_name = {image["name"]: image for image in seed["images"]}
    isos = [by_name[name]["uuid"] for name in USABLE_ISOS]
    iso_template = by_name["rescue.iso"]
    spares = []
    for i in range(spare_isos):
        name = f"bench-{i:02d}.iso"
        image = {**copy.deepcopy(iso_template), "uuid": bench_uuid("image", name), "name": name}
        seed["images"].append(image)
        spares.append(image["uuid"])
    vm_template = next(vm for vm in seed["vmInstances"] if vm["name"] == "web-1")
    cdroms: dict[str, list[str]] = {}

    def add_vm(name: str, index: int, held: Sequence[str | None]) -> str:
        uuid = bench_uuid("vm", name)
        slots = [bench_uuid("cdrom", name, str(d)) for d in range(3)]
        vm = copy.deepcopy(vm_template)
        vm.update(uuid=uuid, name=name, ip=f"10.1.{index // 200}.{index % 200 + 10}")
        vm["cdRoms"] = [
            {"uuid": slot, "deviceId": d, **({"isoUuid": iso} if iso else {})}
            for d, (slot, iso) in enumerate(zip(slots, held, strict=True))
        ]
        seed["vmInstances"].append(vm)
        cdroms[uuid] = slots
        return uuid

    empty = [add_vm(f"bench-empty-{i:02d}", i, [None] * 3) for i in range(empty_vms)]
    full = [add_vm(f"bench-full-{i:02d}", empty_vms + i, isos) for i in range(full_vms)]
    return Fleet(seed, empty, full, isos, spares, cdroms)


# ------------------------------------------------------------------------------------------ the simulator


@contextlib.contextmanager
def simulator(seed: dict[str, Any], mode: str = "subprocess") -> Iterator[SimCtl]:
    """A simulator loaded with `seed`: its own process (default), or in this one (`inprocess`)."""
    with run_simulator(seed=seed, job_seconds=0.3, process=mode == "subprocess") as running:
        sim = SimCtl(running.url, timeout=30)
        try:
            yield sim
        finally:
            sim.close()


# --------------------------------------------------------------------------------------------- the hosts


def provider_host(url: str, *, poll_interval: float | None = None, max_concurrency: int | None = None) -> ProviderHost:
    """A provider host configured as the engine configures it (not started); `max_concurrency` sets
    zstack:maxConcurrency (None: the provider's default)."""
    config = {"zstack:endpoint": url, "zstack:accountName": "admin", "zstack:accountPassword": "password"}
    if poll_interval is not None:
        config["zstack:pollInterval"] = f"{poll_interval:g}"
    if max_concurrency is not None:
        config["zstack:maxConcurrency"] = str(max_concurrency)
    return ProviderHost(
        IsoAttachmentProvider(),
        config=config,
        secret_keys=["zstack:accountPassword"],
        remove_env=["ZSTACK_*"],
        timeout=120.0,
    )


def warm_up(host: ProviderHost, sim: SimCtl, vm: str, iso: str) -> None:
    """Load the provider and log in: one Create and Delete that no benchmark times."""
    sim.config(jobSeconds=0.0)
    id_, outputs = host.create({"vm_uuid": vm, "iso_uuid": iso}, name="warm-up", type_=TYPE)
    host.delete(id_, outputs, name="warm-up", type_=TYPE)


# The engine sends its steps to the provider as they become ready, without waiting for earlier ones; gRPC
# futures issued from one thread reproduce that, in a known order (the host queues what its pool cannot take).


def _struct(host: ProviderHost, props: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update({**props, PROVIDER_KEY: host.provider_string})
    return struct


def create_all(host: ProviderHost, props: Sequence[dict[str, Any]], timeout: float = 300.0) -> list[dict[str, Any]]:
    """Send one Create per property dict, all at once and in this order; return their outputs."""
    calls = [
        host.stub.Create.future(
            provider_pb2.CreateRequest(
                urn=host.urn(f"a{i}", TYPE), name=f"a{i}", type=TYPE, properties=_struct(host, p)
            ),
            timeout=timeout,
        )
        for i, p in enumerate(props)
    ]
    return [rpc.deserialize_properties(call.result().properties) for call in calls]


def delete_all(host: ProviderHost, outputs: Sequence[dict[str, Any]], timeout: float = 300.0) -> None:
    """Send one Delete per stored outputs, all at once."""
    calls = [
        host.stub.Delete.future(
            provider_pb2.DeleteRequest(
                id=f"{o['vm_uuid']}/{o['iso_uuid']}", urn=host.urn(f"a{i}", TYPE), name=f"a{i}", type=TYPE,
                properties=_struct(host, {k: v for k, v in o.items() if k != PROVIDER_KEY}),
            ),
            timeout=timeout,
        )
        for i, o in enumerate(outputs)
    ]  # fmt: skip
    for call in calls:
        call.result()


def diff_all(host: ProviderHost, outputs: Sequence[dict[str, Any]], timeout: float = 300.0) -> list[Any]:
    """A preview's Diffs of unchanged resources (olds = stored outputs, news = the same inputs), all at once."""
    calls = [
        host.stub.Diff.future(
            provider_pb2.DiffRequest(
                id=f"{o['vm_uuid']}/{o['iso_uuid']}", urn=host.urn(f"a{i}", TYPE), name=f"a{i}", type=TYPE,
                olds=_struct(host, o),
                news=_struct(host, {"vm_uuid": o["vm_uuid"], "iso_uuid": o["iso_uuid"]}),
            ),
            timeout=timeout,
        )
        for i, o in enumerate(outputs)
    ]  # fmt: skip
    return [call.result() for call in calls]


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


# --------------------------------------------------------------------------------------------- the table


@dataclass
class Row:
    """One line of the table."""

    bench: str
    case: str
    median: str
    reference: str = ""
    ratio: str = ""
    requests: str = ""
    verdict: str = ""


@dataclass
class Suite:
    """What a benchmark gets: the simulator, the fleet, the number of runs, and its rows."""

    sim: SimCtl
    fleet: Fleet
    runs: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # figures one benchmark hands to another (peak RSS)


HEADERS = ("#", "case", "median", "target / ideal", "ratio", "requests", "verdict")


def render(rows: Sequence[Row]) -> str:
    """A Markdown table, aligned so that it reads in a terminal as well."""
    cells = [HEADERS] + [(r.bench, r.case, r.median, r.reference, r.ratio, r.requests, r.verdict) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
    right = {2, 3, 4, 5}

    def line(values: Sequence[str]) -> str:
        padded = [v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":" if i in right else "-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def machine() -> str:
    """`nproc`, the CPU model and the Python version, for the README."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {platform.system()}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if abs(seconds) >= 0.0995 else f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


def times(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 100 else f"{ratio:.0f}×"


def standalone(run: Callable[[Suite], None], default_runs: int, argv: Sequence[str] | None = None) -> None:
    """`python -m bench.bench_<x>`: one benchmark on its own simulator, printing its rows."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=default_runs, help="runs per case (median of them)")
    parser.add_argument("--simulator", choices=("subprocess", "inprocess"), default="subprocess")
    args = parser.parse_args(argv)
    fleet = build_fleet()
    with simulator(fleet.seed, args.simulator) as sim:
        suite = Suite(sim, fleet, args.runs)
        run(suite)
    print(render(suite.rows))
    for note in suite.notes:
        print(note)
