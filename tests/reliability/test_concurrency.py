"""Many attachments at once through one provider host, and attachments racing for the last empty CD-ROM.

Every ISO ends where it was declared, exactly once; ZStack's own race errors (SYS.1006, §10) never reach a
user unless the race is real, and then the message says what to do.
"""

from __future__ import annotations

import pytest

from devkit import ProviderError, run_concurrently
from tests.support import (
    ERROR_PREFIX,
    ISOS,
    counters,
    disagreements,
    engine_for,
    holders,
    iso_slots,
    named,
    node_invariants,
    provider_host,
    seed_with_farm,
)
from zstack_iso.simulator import run_simulator

FARM_VMS = 8


@pytest.fixture(scope="module")
def farm_node():
    with run_simulator(port=0, seed=seed_with_farm(FARM_VMS), job_seconds=0.05) as node:
        yield node


def test_24_attachments_over_8_vms_created_and_destroyed_concurrently_land_exactly_once(farm, farm_node):
    vms = [farm.vm(f"farm-{n}") for n in range(1, FARM_VMS + 1)]
    isos = [farm.image(name) for name in ISOS]
    # Every VM gets three ISOs; half of them pin a CD-ROM (in reverse order), half let ZStack choose.
    declared = {}
    for v, vm in enumerate(vms):
        cdroms = [c["uuid"] for c in farm.cdroms(vm)]
        for i, iso in enumerate(isos):
            props = {"vm_uuid": vm, "iso_uuid": iso}
            if v % 2:
                props["cdrom_uuid"] = cdroms[2 - i]
            declared[f"vm{v}-iso{i}"] = props
    assert len(declared) == 24

    with provider_host(farm_node.url) as host:
        engine = engine_for(host, parallel=24)
        result = engine.up(declared)
        assert result.errors == {}
        assert result.kinds == dict.fromkeys(declared, "create")
        engine.refresh().raise_on_error()
        assert disagreements(engine, farm) == []
        for name, props in declared.items():
            found = holders(farm, props["vm_uuid"], props["iso_uuid"])
            assert len(found) == 1, name
            if "cdrom_uuid" in props:
                assert found[0]["uuid"] == props["cdrom_uuid"], name
        assert all(len(iso_slots(farm, vm)) == 3 for vm in vms)  # every CD-ROM filled
        assert counters(farm)["jobs"] == 24  # no job failed and was retried, none was sent twice
        assert "SYS.1006" not in host.stderr_text()

        farm.clear_journal()
        destroyed = engine.destroy()
        assert destroyed.errors == {}
        assert engine.names() == []
        assert all(iso_slots(farm, vm) == {} for vm in vms)
        assert counters(farm)["jobs"] == 24
    assert node_invariants(farm) == []


def test_two_attachments_racing_for_the_last_cdrom_through_one_host_one_wins_one_says_no_free_cdrom(sim, simulator):
    vm = sim.vm("web-2")  # one CD-ROM
    rescue, ubuntu = sim.image("rescue.iso"), sim.image("ubuntu-22.04-server.iso")
    only = sim.cdroms(vm)[0]["uuid"]
    with provider_host(simulator.url) as host:
        engine = engine_for(host)
        result = engine.up({"a": {"vm_uuid": vm, "iso_uuid": rescue}, "b": {"vm_uuid": vm, "iso_uuid": ubuntu}})
        assert len(result.errors) == 1
        loser = next(iter(result.errors))
        winner_iso, loser_iso = (ubuntu, rescue) if loser == "a" else (rescue, ubuntu)
        loser_name = "rescue.iso" if loser == "a" else "ubuntu-22.04-server.iso"
        message = result.errors[loser].message
        assert message == (
            f"{ERROR_PREFIX}cannot attach {named('ISO', loser_iso, loser_name)}: {named('VM', vm, 'web-2')} has no "
            f"free CD-ROM (all 1 hold ISOs: "
            f"{only} (device 0, {winner_iso})); detach one of them, or add a CD-ROM (the VM must be Stopped; "
            "at most 3)"
        )
        assert engine.names() == [n for n in ("a", "b") if n != loser]
    assert iso_slots(sim, vm) == {winner_iso: only}
    assert counters(sim)["jobs"] == 1  # the loser was refused before it wrote anything


def test_two_deployments_racing_for_the_last_cdrom_one_wins_the_other_says_no_free_cdrom(sim, simulator):
    """Two stacks (two provider processes) pass their checks at the same time; ZStack's queue decides (§10)."""
    vm = sim.vm("web-2")
    rescue, ubuntu = sim.image("rescue.iso"), sim.image("ubuntu-22.04-server.iso")
    only = sim.cdroms(vm)[0]["uuid"]
    sim.config(jobSeconds=0.5)  # both submit before either job finishes
    with provider_host(simulator.url) as first, provider_host(simulator.url) as second:
        engines = [engine_for(first), engine_for(second)]
        results = run_concurrently(
            [
                lambda: engines[0].up({"a": {"vm_uuid": vm, "iso_uuid": rescue}}),
                lambda: engines[1].up({"b": {"vm_uuid": vm, "iso_uuid": ubuntu}}),
            ]
        )
    failed = [r for r in results if r.errors]
    assert len(failed) == 1
    ((loser, error),) = failed[0].errors.items()
    loser_iso, winner_iso = (rescue, ubuntu) if loser == "a" else (ubuntu, rescue)
    loser_name = "rescue.iso" if loser == "a" else "ubuntu-22.04-server.iso"
    assert isinstance(error, ProviderError)
    assert error.message.startswith(
        f"{ERROR_PREFIX}cannot attach {named('ISO', loser_iso, loser_name)}: {named('VM', vm, 'web-2')} has no "
        f"free CD-ROM (all 1 hold ISOs: "
        f"{only} (device 0, {winner_iso})); detach one of them, or add a CD-ROM (the VM must be Stopped; "
        f"at most 3): SYS.1006"
    ), error.message
    assert iso_slots(sim, vm) == {winner_iso: only}
