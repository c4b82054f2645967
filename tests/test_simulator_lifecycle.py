"""VM lifecycle APIs (§13), their transitional states, getVersion, and the candidate APIs (§4.3)."""

from __future__ import annotations

import time
import uuid

from tests.simctl import SimCtl

RESCUE = "rescue.iso"


def action(sim: SimCtl, vm: str, body: dict) -> tuple[int, dict]:
    return sim.zstack("PUT", f"vm-instances/{sim.vm(vm)}/actions", json=body)


def state(sim: SimCtl, vm: str) -> str | None:
    inv = sim.vm_inventory(sim.vm(vm))
    return inv["state"] if inv else None


def test_stop_then_start_a_vm(sim: SimCtl) -> None:
    status, body = action(sim, "web-1", {"stopVmInstance": {"type": "grace"}})
    assert status == 200 and body["inventory"]["state"] == "Stopped" and "hostUuid" not in body["inventory"]
    status, body = action(sim, "web-1", {"startVmInstance": {}})
    assert status == 200 and body["inventory"]["state"] == "Running" and body["inventory"]["hostUuid"]


def test_transitional_state_lasts_for_the_job_duration(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.4)
    r = sim.submit("PUT", f"vm-instances/{sim.vm('web-1')}/actions", json={"stopVmInstance": {}})
    assert r.status_code == 202
    time.sleep(0.15)
    assert state(sim, "web-1") == "Stopping"
    assert sim.wait(r.json()["location"])[0] == 200
    assert state(sim, "web-1") == "Stopped"


def test_start_of_stopped_vm_passes_through_starting_and_gets_iso_install_path(sim: SimCtl) -> None:
    sim.zstack("POST", f"vm-instances/{sim.vm('db-1')}/iso/{sim.image(RESCUE)}")
    sim.config(jobSeconds=0.3)
    r = sim.submit("PUT", f"vm-instances/{sim.vm('db-1')}/actions", json={"startVmInstance": {}})
    time.sleep(0.1)
    assert state(sim, "db-1") == "Starting"
    status, body = sim.wait(r.json()["location"])
    assert status == 200 and body["inventory"]["state"] == "Running"
    assert sim.cdroms(sim.vm("db-1"))[0]["isoInstallPath"]


def test_reboot_returns_to_running(sim: SimCtl) -> None:
    status, body = action(sim, "web-2", {"rebootVmInstance": {}})
    assert status == 200 and body["inventory"]["state"] == "Running"


def test_reboot_of_stopped_vm_fails_vm1010(sim: SimCtl) -> None:
    status, body = action(sim, "db-1", {"rebootVmInstance": {}})
    assert status == 503 and body["error"]["cause"]["code"] == "VM.1010"


def test_stop_with_invalid_type_fails_sys1007(sim: SimCtl) -> None:
    status, body = action(sim, "web-1", {"stopVmInstance": {"type": "hard"}})
    assert status == 503 and body["error"]["code"] == "SYS.1007"
    assert state(sim, "web-1") == "Running"


def test_destroy_keeps_the_vm_queryable_as_destroyed_and_recover_stops_it(sim: SimCtl) -> None:
    vm = sim.vm("web-2")
    assert sim.zstack("DELETE", f"vm-instances/{vm}", params={"deleteMode": "Permissive"}) == (200, {})
    assert state(sim, "web-2") == "Destroyed"
    status, body = action(sim, "web-2", {"recoverVmInstance": {}})
    assert status == 200 and body["inventory"]["state"] == "Stopped"


def test_expunge_removes_the_vm_and_its_cdroms(sim: SimCtl) -> None:
    vm = sim.vm("old-1")
    assert action(sim, "old-1", {"expungeVmInstance": {}}) == (200, {})
    assert sim.vm_inventory(vm) is None
    assert sim.cdroms(vm) == []
    status, body = sim.zstack("GET", f"vm-instances/{vm}")
    assert status == 200 and body["inventories"] == []


def test_expunge_of_running_vm_fails_vm1010(sim: SimCtl) -> None:
    status, body = action(sim, "web-1", {"expungeVmInstance": {}})
    assert status == 503 and body["error"]["cause"]["code"] == "VM.1010"


def test_operations_on_one_vm_run_one_at_a_time_in_arrival_order(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.15)
    vm, iso = sim.vm("web-1"), sim.image(RESCUE)
    started = time.monotonic()
    locations = [
        sim.submit("POST", f"vm-instances/{vm}/iso/{iso}").json()["location"],
        sim.submit("DELETE", f"vm-instances/{vm}/iso", params={"isoUuid": iso}).json()["location"],
        sim.submit("POST", f"vm-instances/{vm}/iso/{iso}").json()["location"],
    ]
    results = [sim.wait(loc) for loc in locations]
    elapsed = time.monotonic() - started
    assert [s for s, _ in results] == [200, 200, 200]  # attach, detach, attach in that order
    assert [c.get("isoUuid") for c in sim.cdroms(vm)] == [iso, None, None]
    assert elapsed >= 0.45


def test_jobs_on_different_vms_run_in_parallel(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.4)
    iso = sim.image(RESCUE)
    started = time.monotonic()
    locations = [
        sim.submit("POST", f"vm-instances/{sim.vm(n)}/iso/{iso}").json()["location"] for n in ("web-1", "web-2", "db-1")
    ]
    assert [sim.wait(loc)[0] for loc in locations] == [200, 200, 200]
    assert time.monotonic() - started < 1.0


def test_get_version_needs_no_auth(sim: SimCtl) -> None:
    import requests

    r = requests.put(f"{sim.api}/management-nodes/actions", json={"getVersion": {}}, timeout=5)
    assert r.status_code == 200 and isinstance(r.json()["version"], str)


def test_iso_candidates_are_enabled_ready_isos_not_yet_attached(sim: SimCtl) -> None:
    vm = sim.vm("web-1")
    sim.zstack("POST", f"vm-instances/{vm}/iso/{sim.image(RESCUE)}")
    status, body = sim.zstack("GET", f"vm-instances/{vm}/iso-candidates")
    assert status == 200
    assert sorted(i["name"] for i in body["inventories"]) == ["ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso"]


def test_iso_candidates_of_destroyed_vm_are_empty(sim: SimCtl) -> None:
    assert sim.zstack("GET", f"vm-instances/{sim.vm('old-1')}/iso-candidates")[1]["inventories"] == []


def test_vm_candidates_are_running_and_stopped_vms(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", f"images/iso/{sim.image(RESCUE)}/vm-candidates")
    assert status == 200
    assert sorted(v["name"] for v in body["inventories"]) == ["db-1", "legacy-1", "web-1", "web-2"]


def test_candidates_of_unknown_resources_fail_sys1003(sim: SimCtl) -> None:
    assert sim.zstack("GET", f"vm-instances/{'0' * 32}/iso-candidates")[1]["error"]["code"] == "SYS.1003"
    assert sim.zstack("GET", f"images/iso/{'0' * 32}/vm-candidates")[1]["error"]["code"] == "SYS.1003"


def test_destroy_of_unknown_vm_succeeds_or_fails_sys1003_by_the_uuid_shape(sim: SimCtl) -> None:
    # APIDestroyVmInstanceMsg.java:48 @ 5a29293 (successIfResourceNotExisting) and PortApiValidator.java:74-101
    assert sim.zstack("DELETE", f"vm-instances/{uuid.uuid4().hex}") == (200, {})
    status, body = sim.zstack("DELETE", f"vm-instances/{'0' * 32}")
    assert status == 503 and body["error"] == {
        "code": "SYS.1003",
        "description": "A resource can not be found",
        "details": f"invalid value[{'0' * 32}] of field [uuid]",
        "cost": "0ms",
    }
