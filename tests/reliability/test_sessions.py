"""Every session expires in the middle of a deployment of many resources (§1.5): the provider logs in again
once for all of its calls, never once per call, and the deployment succeeds."""

from __future__ import annotations

import threading
import time

import pytest

from devkit import SimCtl
from tests.support import ISOS, counters, disagreements, engine_for, iso_slots, provider_host, seed_with_farm
from zstack_iso.simulator import run_simulator

FARM_VMS = 8


@pytest.fixture(scope="module")
def farm_node():
    with run_simulator(port=0, seed=seed_with_farm(FARM_VMS), job_seconds=0.15) as node:
        yield node


def declared(farm: SimCtl) -> dict[str, dict[str, str]]:
    isos = [farm.image(name) for name in ISOS]
    vms = [farm.vm(f"farm-{n}") for n in range(1, FARM_VMS + 1)]
    return {f"vm{v}-iso{i}": {"vm_uuid": vm, "iso_uuid": iso} for v, vm in enumerate(vms) for i, iso in enumerate(isos)}


def expire_when(farm: SimCtl, jobs_at_least: int) -> threading.Thread:
    """Expire every session once the node has accepted `jobs_at_least` jobs (mid-deployment)."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while counters(farm)["jobs"] < jobs_at_least and time.monotonic() < deadline:
            time.sleep(0.005)
        farm.expire_sessions()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("expiries", [1, 2])
def test_sessions_expiring_mid_deployment_cost_one_login_each_and_the_deployment_succeeds(farm, farm_node, expiries):
    resources = declared(farm)
    with provider_host(farm_node.url) as host:
        engine = engine_for(host, parallel=24)
        watchers = [expire_when(farm, jobs) for jobs in (6, 14)[:expiries]]
        result = engine.up(resources)
        for watcher in watchers:
            watcher.join(30)
        assert result.errors == {}
        engine.refresh().raise_on_error()
        assert disagreements(engine, farm) == []
        seen = counters(farm)
        # The first login, then one per expiry: the threads share the process's session and renew it once.
        assert seen["logins"] == 1 + expiries
        # A submit that met the expired session failed in the interceptor (§5.2 step 2), before any work; only
        # such jobs were submitted again: every job beyond the 24 is one whose poll answered a failure.
        failed_jobs = {
            r["path"] for r in farm.journal()["requests"] if "/api-jobs/" in r["path"] and r["status"] == 503
        }
        assert seen["jobs"] == len(resources) + len(failed_jobs)
        assert all(len(iso_slots(farm, farm.vm(f"farm-{n}"))) == 3 for n in range(1, FARM_VMS + 1))

        # Expired again before the destroy: still one more login, and everything detached.
        farm.expire_sessions()
        farm.clear_journal()
        engine.destroy().raise_on_error()
        assert counters(farm)["logins"] == 1
    assert all(iso_slots(farm, farm.vm(f"farm-{n}")) == {} for n in range(1, FARM_VMS + 1))


def test_an_access_key_deployment_never_logs_in_even_when_sessions_expire(farm, farm_node):
    key_id, secret = farm.access_key
    resources = dict(list(declared(farm).items())[:6])
    with provider_host(
        farm_node.url, accountName="", accountPassword="", accessKeyId=key_id, accessKeySecret=secret
    ) as host:
        engine = engine_for(host)
        watcher = expire_when(farm, 2)
        engine.up(resources).raise_on_error()
        watcher.join(30)
        engine.destroy().raise_on_error()
    seen = counters(farm)
    assert seen["logins"] == 0
    assert seen["jobs"] == 12
