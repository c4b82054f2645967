"""Crashes in the middle of a deployment: the provider host killed while a job runs, and the management node
restarted from its state file. Nothing attached is lost, nothing is attached twice, and the next run converges.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devkit import ProviderError, SimCtl
from tests.support import (
    ERROR_PREFIX,
    counters,
    disagreements,
    engine_for,
    holders,
    iso_slots,
    named,
    provider_host,
    requests_to,
)
from zstack_iso.simulator import Simulator

LONG_JOB = 2.0  # long enough for the old host to die and a new one to start while the job still runs


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def in_background(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def kill_after_submit(host, sim, method: str, fragment: str, log_line: str) -> None:
    """Kill the host once it logged `log_line` and the node accepted its job (HTTP 202), before it answers."""
    host.wait_for_stderr(log_line, timeout=15)
    wait_until(lambda: any(r["status"] == 202 for r in requests_to(sim, method, fragment)), what="the job's 202")
    host.kill()


@pytest.mark.parametrize("job_still_running", [True, False], ids=["job-still-running", "job-finished"])
def test_a_new_host_adopts_an_attach_whose_host_was_killed_before_answering(sim, simulator, job_still_running):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    declared = {"att": {"vm_uuid": vm, "iso_uuid": iso}}
    sim.config(jobSeconds=LONG_JOB)
    with provider_host(simulator.url) as old_host:
        crashed = engine_for(old_host)
        runner = in_background(lambda: crashed.up(declared))
        attaching = f"attaching {named('ISO', iso, 'rescue.iso')}"
        kill_after_submit(old_host, sim, "POST", f"/vm-instances/{vm}/iso/{iso}", attaching)
        runner.join(10)
    assert crashed.names() == []  # the crashed run recorded nothing: the engine retries the create
    if job_still_running:
        assert holders(sim, vm, iso) == []
    else:
        wait_until(lambda: holders(sim, vm, iso) != [], what="the attach job to finish")

    with provider_host(simulator.url) as new_host:
        engine = engine_for(new_host)
        assert engine.up(declared).raise_on_error().kinds == {"att": "create"}
        engine.refresh().raise_on_error()
        log = new_host.stderr_text()

    assert len(holders(sim, vm, iso)) == 1
    assert disagreements(engine, sim) == []
    assert counters(sim)["jobs"] == 1  # the new host never submitted a second attach
    if not job_still_running:
        assert f"adopted {named('ISO', iso, 'rescue.iso')} on {named('VM', vm, 'web-1')}, already attached" in log


@pytest.mark.parametrize("job_still_running", [True, False], ids=["job-still-running", "job-finished"])
def test_a_new_host_finishes_a_detach_whose_host_was_killed_before_answering(sim, simulator, job_still_running):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    declared = {"att": {"vm_uuid": vm, "iso_uuid": iso}}
    with provider_host(simulator.url) as old_host:
        crashed = engine_for(old_host)
        crashed.up(declared).raise_on_error()
        sim.config(jobSeconds=LONG_JOB)
        sim.clear_journal()
        runner = in_background(crashed.destroy)
        detaching = f"detaching {named('ISO', iso, 'rescue.iso')}"
        kill_after_submit(old_host, sim, "DELETE", f"/vm-instances/{vm}/iso", detaching)
        runner.join(10)
    assert crashed.names() == ["att"]  # the delete never answered: the resource is still in the state
    if job_still_running:
        assert len(holders(sim, vm, iso)) == 1
    else:
        wait_until(lambda: holders(sim, vm, iso) == [], what="the detach job to finish")

    with provider_host(simulator.url) as new_host:
        engine = engine_for(new_host)
        engine.state = dict(crashed.state)  # the checkpoint the crashed run left behind
        engine.destroy().raise_on_error()

    assert engine.names() == []
    assert holders(sim, vm, iso) == []
    assert counters(sim)["jobs"] == 1  # one detach job, not two


# -- the management node restarts from its state file ---------------------------------------------------------


def farm(ctl: SimCtl) -> dict[str, dict[str, str]]:
    """Six attachments over three VMs: web-1 (3 CD-ROMs), db-1 (2, Stopped) and web-2 (1)."""
    ubuntu, virtio, rescue = (ctl.image(n) for n in ("ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso", "rescue.iso"))
    web1, db1, web2 = ctl.vm("web-1"), ctl.vm("db-1"), ctl.vm("web-2")
    pairs = [(web1, ubuntu), (web1, virtio), (web1, rescue), (db1, ubuntu), (db1, rescue), (web2, virtio)]
    return {f"att-{n}": {"vm_uuid": vm, "iso_uuid": iso} for n, (vm, iso) in enumerate(pairs)}


def attached_pairs(ctl: SimCtl, declared: dict[str, dict[str, str]]) -> set[tuple[str, str]]:
    vms = {p["vm_uuid"] for p in declared.values()}
    return {(vm, iso) for vm in vms for iso in iso_slots(ctl, vm)}


@pytest.mark.parametrize("downtime", [0.0, 3.0], ids=["quick-restart", "down-longer-than-retries"])
def test_a_node_restarted_from_its_state_file_mid_deployment_loses_nothing_and_the_next_run_converges(
    tmp_path, downtime
):
    """A quick restart loses the jobs in flight (§3.4): the deployment submits them again and finishes. A node
    down for longer than the client's retries fails the deployment clearly; the next run converges."""
    state_file = tmp_path / "state.json"
    node = Simulator(port=0, state_file=state_file, job_seconds=0.4).start()
    port = node.port
    ctl = SimCtl(node.url)
    declared = farm(ctl)
    with provider_host(node.url, requestTimeout="2", jobTimeout="30") as host:
        engine = engine_for(host)
        outcome: dict[str, object] = {}
        runner = in_background(lambda: outcome.setdefault("first", engine.up(declared)))
        wait_until(lambda: ctl.journal()["counters"]["jobs"] >= 3, what="three accepted jobs")
        node.stop()
        before = attached_pairs_from_file(state_file, declared)
        time.sleep(downtime)
        node = Simulator(port=port, state_file=state_file, job_seconds=0.05).start()  # same port, same state
        try:
            ctl = SimCtl(node.url)
            runner.join(60)
            first = outcome["first"]
            assert before <= attached_pairs(ctl, declared)  # whatever was attached is still attached
            assert disagreements(engine, ctl) == []  # what succeeded is really there
            if downtime == 0:
                assert first.errors == {}
                assert "the management node lost the job to attach ISO" in host.stderr_text()
            for name, error in first.errors.items():
                pair = declared[name]
                assert isinstance(error, ProviderError)
                assert error.message.startswith(
                    f"{ERROR_PREFIX}attaching ISO {pair['iso_uuid']} to VM {pair['vm_uuid']} failed: "
                    "CLIENT.UNREACHABLE (The ZStack management node cannot be reached): no usable answer from the "
                    f"management node at {node.url}: connection refused"
                ), error.message

            missing = {(p["vm_uuid"], p["iso_uuid"]) for p in declared.values()} - attached_pairs(ctl, declared)
            ctl.clear_journal()
            engine.up(declared).raise_on_error()
            engine.refresh().raise_on_error()
            assert sorted(engine.names()) == sorted(declared)
            assert disagreements(engine, ctl) == []
            assert attached_pairs(ctl, declared) == {(p["vm_uuid"], p["iso_uuid"]) for p in declared.values()}
            assert ctl.journal()["counters"]["jobs"] == len(missing)  # one job per missing ISO, none twice
        finally:
            node.stop()


def attached_pairs_from_file(state_file: Path, declared: dict[str, dict[str, str]]) -> set[tuple[str, str]]:
    """What the stopped node had saved as attached."""
    cdroms = json.loads(state_file.read_text())["inventory"]["vmCdRoms"].values()
    vms = {p["vm_uuid"] for p in declared.values()}
    return {(c["vmInstanceUuid"], c["isoUuid"]) for c in cdroms if c["vmInstanceUuid"] in vms and c.get("isoUuid")}
