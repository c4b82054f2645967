"""zstack:maxConcurrency: the SDK's provider host runs more than its 4 operations at once.

These tests pin what zstack_iso/host_pool.py relies on in the installed Pulumi SDK: when an SDK release moves the
host's server or its thread pool, they fail here, loudly, instead of a wide stack quietly slowing down.
Concurrency is read from the node: with jobs of 3 s, the attach jobs submitted before the first one ends are
the Creates that the host runs at once (each holds a thread until its job is done).
"""

from __future__ import annotations

import threading
import time

import pytest

from devkit import ProviderHost, SimCtl, run_concurrently
from tests.support import host_config, seed_with_farm
from zstack_iso import host_pool
from zstack_iso.provider import IsoAttachmentProvider
from zstack_iso.simulator import run_simulator

VMS = 8
JOB_SECONDS = 3.0


@pytest.fixture(scope="module")
def farm_node():
    with run_simulator(port=0, seed=seed_with_farm(VMS), job_seconds=JOB_SECONDS) as node:
        yield node


def _jobs_in_flight(ctl: SimCtl, host: ProviderHost) -> int:
    """Start one attach per VM at once; count the jobs the node accepted before the first could end."""
    iso = ctl.image("rescue.iso")
    vms = [ctl.vm(f"farm-{i}") for i in range(1, VMS + 1)]
    creates = [lambda vm=vm: host.create(host.check({}, {"vm_uuid": vm, "iso_uuid": iso})[0]) for vm in vms]
    started = time.monotonic()
    runner = threading.Thread(target=lambda: run_concurrently(creates), daemon=True)
    runner.start()
    submitted = 0
    while time.monotonic() - started < JOB_SECONDS * 0.8:
        submitted = sum(
            1
            for r in ctl.journal()["requests"]
            if r["method"] == "POST" and "/iso/" in r["path"] and r["status"] == 202
        )
        time.sleep(0.05)
    runner.join(timeout=60)
    return submitted


@pytest.mark.parametrize(("setting", "expected"), [(None, VMS), ("16", VMS), ("4", 4)])
def test_the_provider_host_runs_as_many_operations_at_once_as_max_concurrency_allows(
    farm_node, farm: SimCtl, setting: str | None, expected: int
):
    extra = {} if setting is None else {"maxConcurrency": setting}
    with ProviderHost(IsoAttachmentProvider(), config=host_config(farm_node.url, **extra)) as host:
        assert _jobs_in_flight(farm, host) == expected
        assert "maxConcurrency is not applied" not in host.stderr_text()


def test_outside_the_sdk_host_widen_changes_nothing_and_says_why():
    assert host_pool.widen(64) == host_pool.NOT_THE_SDK_HOST
    assert host_pool.current_limit() is None


def test_a_max_concurrency_that_is_not_a_whole_number_is_refused_by_name(farm_node, farm: SimCtl):
    config = host_config(farm_node.url, maxConcurrency="lots")
    with ProviderHost(IsoAttachmentProvider(), config=config) as host:
        vm, iso = farm.vm("farm-1"), farm.image("rescue.iso")
        with pytest.raises(Exception) as failure:
            host.create(host.check({}, {"vm_uuid": vm, "iso_uuid": iso})[0])
    assert "zstack:maxConcurrency / ZSTACK_MAX_CONCURRENCY must be a whole number from 1 to 1024, got 'lots'" in str(
        failure.value
    )
