"""VM lifecycle APIs (§13), their transitional states, getVersion, and the candidate APIs (§4.3)."""

from __future__ import annotations

import time
import uuid

import pytest

from devkit import SimCtl

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


@pytest.mark.parametrize(
    ("vm", "api"),
    [
        pytest.param("db-1", "rebootVmInstance", id="reboot-stopped"),
        pytest.param("web-1", "expungeVmInstance", id="expunge-running"),
    ],
)
def test_an_action_the_vm_state_does_not_allow_fails_vm1010(sim: SimCtl, vm: str, api: str) -> None:
    status, body = action(sim, vm, {api: {}})
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


# ---- UpdateVmInstance and the ISO order tag (point 11): VmInstanceBase.java:5420-5706 @ 5a29293

UBUNTU, VIRTIO = "ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso"


def isos(sim: SimCtl, vm: str) -> list[str | None]:
    return [c.get("isoUuid") for c in sim.cdroms(sim.vm(vm))]


def attach_all(sim: SimCtl, vm: str, *names: str) -> None:
    for name in names:
        status, body = sim.zstack("POST", f"vm-instances/{sim.vm(vm)}/iso/{sim.image(name)}")
        assert status == 200, body


def test_iso_order_change_swaps_the_iso_with_the_lowest_device_id_cdrom(sim: SimCtl) -> None:
    # ChangeIsoOrderCase.testAttach2Iso (L186-187): the ISO goes to deviceId 0, the former one to its old deviceId;
    # updateVmIsoFirstOrder (L5686-5697) also overwrites the moved-back ISO's install path with the protocol of
    # the first CD-ROM (null here): the node's bug, reproduced
    attach_all(sim, "web-1", UBUNTU, RESCUE)
    before = sim.cdroms(sim.vm("web-1"))
    status, body = sim.change_iso_order("web-1", RESCUE)
    assert status == 200 and body["inventory"]["uuid"] == sim.vm("web-1")
    after = sim.cdroms(sim.vm("web-1"))
    assert [c.get("isoUuid") for c in after] == [sim.image(RESCUE), sim.image(UBUNTU), None]
    assert [c["uuid"] for c in after] == [c["uuid"] for c in before]  # the CD-ROMs keep their deviceIds
    assert after[0]["isoInstallPath"] == before[1]["isoInstallPath"]
    assert "isoInstallPath" not in after[1]
    assert sorted(c["isoUuid"] for c in body["inventory"]["vmCdRoms"] if "isoUuid" in c) == sorted(
        [sim.image(RESCUE), sim.image(UBUNTU)]
    )


def test_iso_order_change_ignores_the_device_id_of_the_tag(sim: SimCtl) -> None:
    # ChangeIsoOrderCase.testAttach3Iso (L205-225); SystemTagUtils.findTagValue reads only the iso token (L5658)
    attach_all(sim, "web-1", UBUNTU, VIRTIO, RESCUE)
    assert sim.change_iso_order("web-1", RESCUE, device_id=1)[0] == 200
    assert isos(sim, "web-1") == [sim.image(RESCUE), sim.image(VIRTIO), sim.image(UBUNTU)]


def test_iso_order_change_of_the_first_iso_is_a_no_op(sim: SimCtl) -> None:
    attach_all(sim, "web-1", UBUNTU, RESCUE)
    before = sim.cdroms(sim.vm("web-1"))
    assert sim.change_iso_order("web-1", UBUNTU)[0] == 200
    assert sim.cdroms(sim.vm("web-1")) == before


def test_iso_order_change_on_a_stopped_vm_needs_no_state(sim: SimCtl) -> None:
    # VmInstanceApiInterceptor.java:489-555 returns early without cpuNum/memorySize; no state check in the queue
    attach_all(sim, "db-1", UBUNTU, RESCUE)
    assert sim.change_iso_order("db-1", RESCUE)[0] == 200
    assert isos(sim, "db-1") == [sim.image(RESCUE), sim.image(UBUNTU)]


def test_iso_order_change_of_an_iso_not_on_the_vm_fails_sys1006_after_the_name_was_saved(sim: SimCtl) -> None:
    # L5664-5667: operr "ISO[uuid:%s] is not attached to VM[uuid:%s]", thrown after dbf.update(self) (L5487-5491)
    vm, iso = sim.vm("web-1"), sim.image(RESCUE)
    body = {"updateVmInstance": {"name": "web-1-renamed"}, "systemTags": [f"iso::{iso}::0"]}
    status, reply = sim.zstack("PUT", f"vm-instances/{vm}/actions", json=body)
    assert status == 503 and reply["error"]["code"] == "SYS.1006"
    assert reply["error"]["details"] == f"ISO[uuid:{iso}] is not attached to VM[uuid:{vm}]"
    assert sim.vm_inventory(vm)["name"] == "web-1-renamed"


def test_iso_order_change_with_an_empty_cdrom_before_the_iso_fails_sys1000_as_the_node(sim: SimCtl) -> None:
    # L5681: stream().filter(v -> v.getIsoUuid().equals(isoUuid)) meets the empty CD-ROM first: a
    # NullPointerException, which SimpleFlowChain.java:384-388 turns into inerr(null) (no details)
    vm = sim.vm("web-1")
    target = sim.cdroms(vm)[1]["uuid"]
    status, _ = sim.zstack(
        "POST", f"vm-instances/{vm}/iso/{sim.image(RESCUE)}", json={"systemTags": [f"cdromUuid::{target}"]}
    )
    assert status == 200
    status, body = sim.change_iso_order("web-1", RESCUE, check=False)
    assert status == 503
    assert body["error"] == {"code": "SYS.1000", "description": "An internal error happened in system", "cost": "0ms"}
    assert isos(sim, "web-1") == [None, sim.image(RESCUE), None]


@pytest.mark.parametrize("tag", ["iso::{iso}", "iso::{iso}::0::1", "ISO::{iso}::0", "cdromUuid::{iso}"])
def test_tags_that_do_not_match_the_iso_tag_format_change_nothing(sim: SimCtl, tag: str) -> None:
    # TagUtils.isMatch (TagUtils.java:33-67) against VmSystemTags.ISO "iso::{iso}::{deviceId}" (L73-77)
    attach_all(sim, "web-1", UBUNTU, RESCUE)
    body = {"updateVmInstance": {}, "systemTags": [tag.format(iso=sim.image(RESCUE))]}
    assert sim.zstack("PUT", f"vm-instances/{sim.vm('web-1')}/actions", json=body)[0] == 200
    assert isos(sim, "web-1") == [sim.image(UBUNTU), sim.image(RESCUE), None]


def test_update_vm_changes_name_and_description(sim: SimCtl) -> None:
    body = {"updateVmInstance": {"name": "db-renamed", "description": "for tests"}}
    status, reply = sim.zstack("PUT", f"vm-instances/{sim.vm('db-1')}/actions", json=body)
    assert status == 200
    assert reply["inventory"]["name"] == "db-renamed" and reply["inventory"]["description"] == "for tests"


def test_update_vm_with_a_name_over_255_characters_fails_sys1007(sim: SimCtl) -> None:
    # APIUpdateVmInstanceMsg.java:24-25 maxLength 255; ApiMessageParamValidator.java:29-35
    body = {"updateVmInstance": {"name": "n" * 256}}
    status, reply = sim.zstack("PUT", f"vm-instances/{sim.vm('db-1')}/actions", json=body)
    assert status == 503 and reply["error"]["details"] == (
        "field[name] of message[org.zstack.header.message.ApiMessageParamValidator] exceeds max length of string. "
        "expected was <= 255, actual was 256"
    )


def test_update_vm_fields_the_simulator_does_not_serve_answer_501(sim: SimCtl) -> None:
    r = sim.submit("PUT", f"vm-instances/{sim.vm('db-1')}/actions", json={"updateVmInstance": {"cpuNum": 4}})
    assert r.status_code == 501 and "cpuNum" in r.text


# ---- Destroy, Recover and Expunge of a VM holding ISOs (point 12)


def test_destroy_keeps_the_cdroms_and_their_isos(sim: SimCtl) -> None:
    # vm.deletionPolicy Delay (conf/globalConfig/vm.xml:20-31): doDestroy (VmInstanceBase.java:2640-2641) runs the
    # destroy flows (VmInstanceManager.xml:85-93), none of which touches VmCdRomVO
    attach_all(sim, "web-1", RESCUE)
    before = sim.cdroms(sim.vm("web-1"))
    assert sim.destroy_vm("web-1") == (200, {})
    assert state(sim, "web-1") == "Destroyed"
    assert sim.cdroms(sim.vm("web-1")) == before and before[0]["isoInstallPath"]


def test_recover_brings_the_vm_back_stopped_with_its_isos(sim: SimCtl) -> None:
    # VmInstanceBase.java:4310-4472: recover flows (volumes, IP check) then Stopped; CD-ROMs untouched
    attach_all(sim, "web-1", RESCUE)
    sim.destroy_vm("web-1")
    status, body = sim.recover_vm("web-1")
    assert status == 200 and body["inventory"]["state"] == "Stopped"
    assert [c.get("isoUuid") for c in sorted(body["inventory"]["vmCdRoms"], key=lambda c: c["deviceId"])] == [
        sim.image(RESCUE),
        None,
        None,
    ]


def test_destroyed_vm_keeps_its_iso_since_detach_is_refused(sim: SimCtl) -> None:
    # AbstractVmInstance.java:162-166: a Destroyed VM allows only Expunge and Recover
    attach_all(sim, "web-1", RESCUE)
    sim.destroy_vm("web-1")
    status, body = sim.zstack("DELETE", f"vm-instances/{sim.vm('web-1')}/iso", params={"isoUuid": sim.image(RESCUE)})
    assert status == 503 and body["error"]["cause"]["code"] == "VM.1010"
    assert isos(sim, "web-1") == [sim.image(RESCUE), None, None]


def test_expunge_deletes_the_cdrom_rows_but_not_the_isos(sim: SimCtl) -> None:
    # VmInstanceBase.expunge (L1284-1332): dbf.removeCollection(self.getVmCdRoms()) at L1317; images untouched
    vm, iso = sim.vm("web-1"), sim.image(RESCUE)
    attach_all(sim, "web-1", RESCUE)
    sim.destroy_vm(vm)
    assert sim.expunge_vm(vm) == (200, {})
    assert sim.vm_inventory(vm) is None and sim.cdroms(vm) == []
    assert sim.zstack("GET", "vm-instances/cdroms", params={"q": f"vmInstanceUuid={vm}"})[1]["inventories"] == []
    image = sim.zstack("GET", f"images/{iso}")[1]["inventories"][0]
    assert image["status"] == "Ready" and image["state"] == "Enabled"
