"""ISO jobs and VM lifecycle through ZStackClient, against the simulator over real HTTP."""

from __future__ import annotations

import re
import threading
import time

import pytest

from tests.client.calls import destroy_vm, expunge_vm, reboot_vm, recover_vm, start_vm, stop_vm
from zstack_iso.client import ZStackClient
from zstack_iso.errors import ZStackError

UBUNTU = "ubuntu-22.04-server.iso"
VIRTIO = "virtio-win-0.1.240.iso"
RESCUE = "rescue.iso"


def _poll_paths(sim) -> list[str]:
    return [r["path"] for r in sim.journal()["requests"] if "/api-jobs/" in r["path"]]


def test_attach_fills_the_empty_cdrom_with_the_lowest_device_id(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(UBUNTU)
    vm = client.attach_iso(vm_uuid, iso)
    assert vm.uuid == vm_uuid
    assert vm.cdroms[0].device_id == 0 and vm.cdroms[0].iso_uuid == iso
    assert [c["isoUuid"] if "isoUuid" in c else None for c in sim.cdroms(vm_uuid)] == [iso, None, None]


def test_attach_into_a_pinned_cdrom_uses_that_cdrom(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(VIRTIO)
    third = sim.cdroms(vm_uuid)[2]["uuid"]
    vm = client.attach_iso(vm_uuid, iso, cdrom_uuid=third)
    assert vm.cdrom_with_iso(iso).uuid == third
    assert sim.cdroms(vm_uuid)[2].get("isoUuid") == iso


def test_detach_of_an_attached_iso_empties_its_cdrom(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(UBUNTU)
    client.attach_iso(vm_uuid, iso)
    vm = client.detach_iso(vm_uuid, iso)
    assert vm.cdrom_with_iso(iso) is None
    assert all(not c.get("isoUuid") for c in sim.cdroms(vm_uuid))
    assert len(sim.cdroms(vm_uuid)) == 3  # §6.2: the CD-ROM itself stays


def test_detach_of_already_detached_iso_succeeds(sim, client):
    vm_uuid = sim.vm("web-1")
    vm = client.detach_iso(vm_uuid, sim.image(RESCUE))
    assert vm.uuid == vm_uuid and vm.attached_iso_uuids == []


def test_attach_of_an_iso_already_in_the_vm_fails_with_sys_1006(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(UBUNTU)
    client.attach_iso(vm_uuid, iso)
    with pytest.raises(ZStackError) as info:
        client.attach_iso(vm_uuid, iso)
    assert info.value.code == "SYS.1006"
    assert [c.get("isoUuid") for c in sim.cdroms(vm_uuid)].count(iso) == 1


def test_attach_to_a_vm_whose_cdroms_are_full_fails_with_sys_1006(sim, client):
    vm_uuid = sim.vm("web-2")  # one CD-ROM
    client.attach_iso(vm_uuid, sim.image(UBUNTU))
    with pytest.raises(ZStackError) as info:
        client.attach_iso(vm_uuid, sim.image(VIRTIO))
    assert info.value.code == "SYS.1006"
    assert info.value.http_status == 503 and re.fullmatch(r"[0-9a-f]{32}", info.value.job_uuid)


def test_attach_to_an_unknown_vm_fails_with_sys_1003(sim, client):
    with pytest.raises(ZStackError) as info:
        client.attach_iso("0" * 32, sim.image(UBUNTU))
    assert info.value.code == "SYS.1003"


def test_job_error_surfaces_the_code_and_the_cause_chain(sim, client):
    error = {
        "code": "SYS.1006",
        "description": "An operation failed",
        "details": "current vm instance state[Starting] doesn't allow to proceed",
        "cause": {
            "code": "VM.1010",
            "description": "VM is not in state that allows required operation",
            "details": "state Starting",
        },
    }
    sim.fault(method="POST", pathRegex="/iso/", action="job_error", error=error)
    vm_uuid = sim.vm("web-1")
    with pytest.raises(ZStackError) as info:
        client.attach_iso(vm_uuid, sim.image(UBUNTU))
    err = info.value
    assert err.code == "SYS.1006" and err.cause is not None and err.cause.code == "VM.1010"
    assert err.codes == ("SYS.1006", "VM.1010")
    assert err.api == "AttachIsoToVmInstance" and err.http_status == 503
    text = str(err)
    assert "SYS.1006" in text and "caused by VM.1010" in text and err.job_uuid in text
    # The job UUID in the error is the node's name for that job (the client's own X-Job-UUID, §3.2).
    answer = sim.submit("GET", f"api-jobs/{err.job_uuid}")
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "SYS.1006"


def test_slow_job_beyond_the_timeout_fails_with_the_job_named(sim):
    sim.config(jobSeconds=3.0)
    with ZStackClient(sim.url, account_name="admin", account_password="password", job_timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(ZStackError) as info:
            client.attach_iso(sim.vm("web-1"), sim.image(UBUNTU))
        elapsed = time.monotonic() - started
    err = info.value
    assert err.code == "CLIENT.TIMEOUT"
    assert re.fullmatch(r"[0-9a-f]{32}", err.job_uuid) and err.job_uuid in str(err)
    assert "AttachIsoToVmInstance" in str(err)
    assert 0.5 <= elapsed < 2.0


def test_adaptive_polling_sees_a_short_job_end_soon_and_a_fixed_interval_does_not(sim):
    sim.config(jobSeconds=0.1)
    vm_uuid = sim.vm("web-1")
    timings = {}
    for name, interval in (("adaptive", None), ("fixed-1s", 1.0)):
        with ZStackClient(sim.url, account_name="admin", account_password="password", poll_interval=interval) as client:
            client.get_vm(vm_uuid)  # log in outside the measurement
            started = time.monotonic()
            client.attach_iso(vm_uuid, sim.image(UBUNTU))
            timings[name] = time.monotonic() - started
            client.detach_iso(vm_uuid, sim.image(UBUNTU))
    assert timings["adaptive"] < 0.1 + 0.15
    assert timings["fixed-1s"] >= 1.0


def test_polls_of_a_long_job_back_off(sim, client):
    sim.config(jobSeconds=2.0)
    vm_uuid = sim.vm("web-1")
    sim.clear_journal()
    client.attach_iso(vm_uuid, sim.image(UBUNTU))
    polls = len(_poll_paths(sim))
    # 15 ms at first, then 6 % of the elapsed time: about 50 polls for 2 s, where a 15 ms loop makes 130.
    assert 10 <= polls <= 70, polls


def test_one_client_serves_concurrent_attaches_from_many_threads(sim, client):
    vm_uuid = sim.vm("web-1")
    isos = [sim.image(UBUNTU), sim.image(VIRTIO), sim.image(RESCUE)]
    errors: list[BaseException] = []

    def attach(iso: str) -> None:
        try:
            client.attach_iso(vm_uuid, iso)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=attach, args=(iso,)) for iso in isos]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(c.get("isoUuid") for c in sim.cdroms(vm_uuid)) == sorted(isos)


def test_vm_lifecycle_calls_reach_their_states(sim, client):
    vm_uuid = sim.vm("web-2")
    assert stop_vm(client, vm_uuid).state == "Stopped"
    assert start_vm(client, vm_uuid).state == "Running"
    assert reboot_vm(client, vm_uuid).state == "Running"
    destroy_vm(client, vm_uuid)
    assert client.get_vm(vm_uuid).state == "Destroyed"
    assert recover_vm(client, vm_uuid).state == "Stopped"
    destroy_vm(client, vm_uuid)
    expunge_vm(client, vm_uuid)
    assert client.get_vm(vm_uuid) is None
    assert sim.vm_inventory(vm_uuid) is None


def test_attach_to_a_stopped_vm_succeeds(sim, client):
    vm_uuid, iso = sim.vm("db-1"), sim.image(RESCUE)
    vm = client.attach_iso(vm_uuid, iso)
    assert vm.state == "Stopped" and vm.cdrom_with_iso(iso).device_id == 0


# Created: a new VM; §5.2 step 4 refuses ISOs in it, and it ends by itself.
@pytest.mark.parametrize("transition", ["Starting", "Created"])
def test_wait_for_settled_state_waits_out_a_transition(sim, client, transition):
    vm_uuid = sim.vm("web-1")
    sim.hold_state(vm_uuid, transition, 0.6)
    started = time.monotonic()
    vm = client.wait_for_settled_state(vm_uuid, timeout=5)
    assert vm.state == "Running" and vm.allows_iso_operations
    assert 0.3 <= time.monotonic() - started < 3.0


def test_wait_for_settled_state_times_out_naming_the_vm_and_state(sim, client):
    vm_uuid = sim.vm("web-1")
    sim.hold_state(vm_uuid, "Migrating", 5)
    with pytest.raises(ZStackError) as info:
        client.wait_for_settled_state(vm_uuid, timeout=0.4)
    assert info.value.code == "CLIENT.TIMEOUT"
    assert vm_uuid in str(info.value) and "Migrating" in str(info.value)


def test_wait_for_settled_state_of_a_missing_vm_is_none(sim, client):
    assert client.wait_for_settled_state("f" * 32, timeout=1) is None


def test_wait_for_settled_state_returns_an_expunging_vm_at_once_as_gone(sim, client):
    vm_uuid = sim.vm("web-1")
    sim.hold_state(vm_uuid, "Expunging", 5)
    started = time.monotonic()
    vm = client.wait_for_settled_state(vm_uuid, timeout=5)
    assert vm.state == "Expunging" and vm.is_gone and not vm.is_transitional
    assert time.monotonic() - started < 1.0


def test_wait_for_settled_state_ends_at_a_shared_deadline_before_its_timeout(sim, client):
    vm_uuid = sim.vm("web-1")
    sim.hold_state(vm_uuid, "Migrating", 5)
    started = time.monotonic()
    with pytest.raises(ZStackError) as info:
        client.wait_for_settled_state(vm_uuid, timeout=30, deadline=started + 0.5)
    elapsed = time.monotonic() - started
    assert info.value.code == "CLIENT.TIMEOUT"
    assert vm_uuid in str(info.value) and "Migrating" in str(info.value)
    assert 0.45 <= elapsed < 1.5


def test_wait_for_settled_state_with_a_passed_deadline_reads_the_vm_once(sim, client):
    vm_uuid = sim.vm("web-1")
    assert client.wait_for_settled_state(vm_uuid, deadline=time.monotonic() - 1).state == "Running"
    sim.hold_state(vm_uuid, "Stopping", 5)
    started = time.monotonic()
    with pytest.raises(ZStackError) as info:
        client.wait_for_settled_state(vm_uuid, deadline=started - 1)
    assert info.value.code == "CLIENT.TIMEOUT" and "Stopping" in str(info.value)
    assert time.monotonic() - started < 0.5


def test_attached_iso_is_found_in_its_cdrom_whatever_the_case_of_the_uuid_asked_for(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    client.attach_iso(vm_uuid, iso)
    vm = client.get_vm(vm_uuid)
    stored = sim.cdroms(vm_uuid)[0]["isoUuid"]
    assert stored == iso and stored == stored.lower()  # ZStack stores lowercase hex
    assert vm.cdrom_with_iso(iso) is vm.cdroms[0]
    assert vm.cdrom_with_iso(iso.upper()) is vm.cdroms[0]
    assert [c.device_id for c in vm.empty_cdroms] == [1, 2]
