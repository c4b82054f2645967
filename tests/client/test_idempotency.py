"""Caller-chosen job UUIDs (idempotency keys): a process that repeats the call of a crashed one waits for the
crashed one's job instead of running a second. Against the simulator over real HTTP."""

from __future__ import annotations

import pytest

from tests.support import counters, holders
from zstack_iso.client import stable_job_uuid
from zstack_iso.errors import ZStackError

RESCUE = "rescue.iso"
# The client logs in before each test arms its faults (tests/client/conftest.py).
LOG_IN_FIRST = True


def _crashed_process_submits(sim, method: str, path: str, job_uuid: str, **kwargs) -> str:
    """What a process that died after submitting left behind: an accepted job nobody polls."""
    answer = sim.submit(method, path, headers={"X-Job-UUID": job_uuid}, **kwargs)
    assert answer.status_code == 202, answer.text
    return answer.json()["location"]


def test_stable_job_uuid_is_32_hex_and_the_same_for_the_same_call():
    key = stable_job_uuid("attach", "A" * 32, "b" * 32)
    assert len(key) == 32 and int(key, 16) >= 0
    assert key == stable_job_uuid("attach", "a" * 32, "B" * 32)
    assert key != stable_job_uuid("detach", "a" * 32, "b" * 32)


def test_attach_with_the_job_uuid_of_a_running_attach_waits_for_it_instead_of_submitting_again(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    key = stable_job_uuid("attach", vm_uuid, iso)
    sim.config(jobSeconds=0.5)
    sim.clear_journal()
    _crashed_process_submits(sim, "POST", f"vm-instances/{vm_uuid}/iso/{iso}", key)
    vm = client.attach_iso(vm_uuid, iso, job_uuid=key)
    assert vm.cdrom_with_iso(iso) is not None
    assert counters(sim)["jobs"] == 1 and len(holders(sim, vm_uuid, iso)) == 1


def test_attach_with_the_job_uuid_of_a_finished_attach_adopts_its_work(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    key = stable_job_uuid("attach", vm_uuid, iso)
    sim.clear_journal()
    status, _ = sim.wait(_crashed_process_submits(sim, "POST", f"vm-instances/{vm_uuid}/iso/{iso}", key))
    assert status == 200
    vm = client.attach_iso(vm_uuid, iso, job_uuid=key)
    assert vm.cdrom_with_iso(iso) is not None
    assert counters(sim)["jobs"] == 1 and len(holders(sim, vm_uuid, iso)) == 1


def test_attach_with_the_job_uuid_of_an_older_unrelated_call_attaches_again(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    key = stable_job_uuid("attach", vm_uuid, iso)
    client.attach_iso(vm_uuid, iso, job_uuid=key)
    client.detach_iso(vm_uuid, iso)
    sim.clear_journal()
    vm = client.attach_iso(vm_uuid, iso, job_uuid=key)  # the old job with this UUID is long over
    assert vm.cdrom_with_iso(iso) is not None and len(holders(sim, vm_uuid, iso)) == 1
    assert counters(sim)["jobs"] == 1  # one new job, under a fresh UUID


def test_attach_with_the_job_uuid_of_an_older_failed_call_reports_the_new_failure(sim, client):
    vm_uuid = sim.vm("web-2")  # one CD-ROM
    key = stable_job_uuid("attach", vm_uuid, sim.image(RESCUE))
    client.attach_iso(vm_uuid, sim.image("ubuntu-22.04-server.iso"))
    with pytest.raises(ZStackError):
        client.attach_iso(vm_uuid, sim.image(RESCUE), job_uuid=key)
    with pytest.raises(ZStackError) as info:
        client.attach_iso(vm_uuid, sim.image(RESCUE), job_uuid=key)
    assert info.value.code == "SYS.1006" and info.value.job_uuid != key


def test_detach_with_the_job_uuid_of_a_running_detach_waits_for_it(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    client.attach_iso(vm_uuid, iso)
    key = stable_job_uuid("detach", vm_uuid, iso)
    sim.config(jobSeconds=0.5)
    sim.clear_journal()
    _crashed_process_submits(sim, "DELETE", f"vm-instances/{vm_uuid}/iso", key, params={"isoUuid": iso})
    vm = client.detach_iso(vm_uuid, iso, job_uuid=key)
    assert vm.cdrom_with_iso(iso) is None and len(holders(sim, vm_uuid, iso)) == 0
    assert counters(sim)["jobs"] == 1


def test_keyed_attach_whose_answer_is_lost_runs_once(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    sim.clear_journal()
    sim.fault(method="POST", pathRegex="/iso/", action="drop_after_accept")
    vm = client.attach_iso(vm_uuid, iso, job_uuid=stable_job_uuid("attach", vm_uuid, iso))
    assert vm.cdrom_with_iso(iso) is not None
    assert counters(sim)["jobs"] == 1 and len(holders(sim, vm_uuid, iso)) == 1


def test_a_malformed_job_uuid_is_refused_before_anything_is_sent(sim, client):
    sim.clear_journal()
    with pytest.raises(ZStackError) as info:
        client.attach_iso(sim.vm("web-1"), sim.image(RESCUE), job_uuid="not-a-uuid")
    assert info.value.code == "CLIENT.CONFIG"
    assert counters(sim)["jobs"] == 0
