"""DetachIsoFromVmInstance (§6) and the CD-ROM APIs (§7.2) over real HTTP."""

from __future__ import annotations

import uuid

import pytest
import requests

from devkit import SimCtl
from zstack_iso.simulator import run_simulator
from zstack_iso.simulator.seed import DEFAULT_SEED_PATH

UBUNTU, RESCUE = "ubuntu-22.04-server.iso", "rescue.iso"


def attach(sim: SimCtl, vm: str, iso: str) -> None:
    status, body = sim.zstack("POST", f"vm-instances/{sim.vm(vm)}/iso/{sim.image(iso)}")
    assert status == 200, body


def detach(sim: SimCtl, vm: str, iso: str | None = None) -> tuple[int, dict]:
    params = {"isoUuid": sim.image(iso)} if iso else None
    return sim.zstack("DELETE", f"vm-instances/{sim.vm(vm)}/iso", params=params)


def iso_uuids(sim: SimCtl, vm: str) -> list[str | None]:
    return [c.get("isoUuid") for c in sim.cdroms(sim.vm(vm))]


# ---- §6 detach


def test_detach_clears_the_cdrom_but_keeps_the_row(sim: SimCtl) -> None:
    attach(sim, "web-1", RESCUE)
    status, body = detach(sim, "web-1", RESCUE)
    assert status == 200
    cdroms = body["inventory"]["vmCdRoms"]
    assert len(cdroms) == 3
    assert all("isoUuid" not in c and "isoInstallPath" not in c for c in cdroms)


def test_detach_of_already_detached_iso_succeeds(sim: SimCtl) -> None:
    status, body = detach(sim, "web-1", RESCUE)
    assert status == 200
    assert body["inventory"]["uuid"] == sim.vm("web-1")


def test_detach_of_iso_that_is_not_attached_leaves_other_isos(sim: SimCtl) -> None:
    attach(sim, "web-1", UBUNTU)
    assert detach(sim, "web-1", RESCUE)[0] == 200
    assert iso_uuids(sim, "web-1") == [sim.image(UBUNTU), None, None]


def test_detach_without_iso_uuid_detaches_the_only_iso(sim: SimCtl) -> None:
    attach(sim, "web-1", UBUNTU)
    assert detach(sim, "web-1")[0] == 200
    assert iso_uuids(sim, "web-1") == [None, None, None]


def test_detach_without_iso_uuid_and_no_iso_is_a_no_op(sim: SimCtl) -> None:
    assert detach(sim, "web-2")[0] == 200


def test_detach_without_iso_uuid_with_several_isos_fails_sys1006(sim: SimCtl) -> None:
    attach(sim, "web-1", UBUNTU)
    attach(sim, "web-1", RESCUE)
    status, body = detach(sim, "web-1")
    assert status == 503
    assert body["error"]["code"] == "SYS.1006"
    assert body["error"]["details"] == (
        f"VM[uuid:{sim.vm('web-1')}] has multiple ISOs attached, specify the isoUuid when detaching"
    )
    assert iso_uuids(sim, "web-1").count(None) == 1


def test_detach_from_unknown_vm_fails_sys1003(sim: SimCtl) -> None:
    status, body = sim.zstack("DELETE", f"vm-instances/{'0' * 32}/iso", params={"isoUuid": sim.image(RESCUE)})
    assert status == 503
    assert body["error"]["code"] == "SYS.1003"
    assert "type:VmInstanceVO" in body["error"]["details"]


def test_detach_from_destroyed_vm_fails_vm1010_even_when_nothing_is_attached(sim: SimCtl) -> None:
    status, body = detach(sim, "old-1", RESCUE)
    assert status == 503
    assert body["error"]["code"] == "SYS.1006" and body["error"]["cause"]["code"] == "VM.1010"
    assert "org.zstack.header.vm.APIDetachIsoFromVmInstanceMsg" in body["error"]["details"]


def test_detach_in_transitional_state_fails_before_the_no_op_check(sim: SimCtl) -> None:
    sim.hold_state("web-2", "Stopping", 5)
    status, body = detach(sim, "web-2", RESCUE)
    assert status == 503 and "state[Stopping]" in body["error"]["details"]


def test_detach_reads_iso_uuid_from_query_string_not_body(sim: SimCtl) -> None:
    attach(sim, "web-1", UBUNTU)
    attach(sim, "web-1", RESCUE)
    # §3.2: a DELETE body is ignored, so this is a detach without isoUuid on a VM with two ISOs
    status, body = sim.zstack("DELETE", f"vm-instances/{sim.vm('web-1')}/iso", json={"isoUuid": sim.image(RESCUE)})
    assert status == 503 and "multiple ISOs" in body["error"]["details"]


def test_detach_from_stopped_vm(sim: SimCtl) -> None:
    attach(sim, "db-1", RESCUE)
    assert detach(sim, "db-1", RESCUE)[0] == 200
    assert iso_uuids(sim, "db-1") == [None, None]


# ---- §7.2 CreateVmCdRom


def create_cdrom(sim: SimCtl, vm: str, **params) -> tuple[int, dict]:
    body = {"params": {"name": "cd-extra", "vmInstanceUuid": sim.vm(vm), **params}, "systemTags": [], "userTags": []}
    return sim.zstack("POST", "vm-instances/cdroms", json=body)


def test_create_cdrom_on_stopped_vm_takes_lowest_free_device_id(sim: SimCtl) -> None:
    status, body = create_cdrom(sim, "db-1", description="extra drive")
    assert status == 200
    cd = body["inventory"]
    assert cd["deviceId"] == 2 and cd["name"] == "cd-extra" and cd["description"] == "extra drive"
    assert [c["deviceId"] for c in sim.cdroms(sim.vm("db-1"))] == [0, 1, 2]


def test_create_cdrom_with_iso_attaches_it_without_install_path(sim: SimCtl) -> None:
    status, body = create_cdrom(sim, "db-1", isoUuid=sim.image(RESCUE))
    assert status == 200
    assert body["inventory"]["isoUuid"] == sim.image(RESCUE) and "isoInstallPath" not in body["inventory"]


def test_create_cdrom_on_running_vm_fails_sys1007(sim: SimCtl) -> None:
    status, body = create_cdrom(sim, "web-2")
    assert status == 503
    assert body["error"]["code"] == "SYS.1007"
    assert (
        body["error"]["details"] == f"Can not create CD-ROM for vm[uuid:{sim.vm('web-2')}] which is in state[Running] "
    )


def test_create_fourth_cdrom_fails_sys1006(sim: SimCtl) -> None:
    assert create_cdrom(sim, "db-1")[0] == 200
    status, body = create_cdrom(sim, "db-1")
    assert body["error"]["code"] == "SYS.1006"
    assert body["error"]["details"] == f"VM[uuid:{sim.vm('db-1')}] can only add 3 CDROMs"


def test_create_cdrom_with_iso_already_on_vm_fails_sys1006(sim: SimCtl) -> None:
    attach(sim, "db-1", RESCUE)
    status, body = create_cdrom(sim, "db-1", isoUuid=sim.image(RESCUE))
    assert body["error"]["code"] == "SYS.1006" and "already has an ISO" in body["error"]["details"]


def test_create_cdrom_without_name_fails_sys1007(sim: SimCtl) -> None:
    body = {"params": {"vmInstanceUuid": sim.vm("db-1")}}
    status, reply = sim.zstack("POST", "vm-instances/cdroms", json=body)
    assert status == 503 and reply["error"]["code"] == "SYS.1007" and "name" in reply["error"]["details"]


# ---- §7.2 DeleteVmCdRom


def test_delete_cdrom_of_stopped_vm_answers_empty_body(sim: SimCtl) -> None:
    cd = sim.cdroms(sim.vm("db-1"))[1]["uuid"]
    assert sim.zstack("DELETE", f"vm-instances/cdroms/{cd}") == (200, {})
    assert [c["uuid"] for c in sim.cdroms(sim.vm("db-1"))] == [sim.cdroms(sim.vm("db-1"))[0]["uuid"]]


def test_delete_cdrom_of_running_vm_fails_vm1010(sim: SimCtl) -> None:
    cd = sim.cdroms(sim.vm("web-1"))[0]["uuid"]
    status, body = sim.zstack("DELETE", f"vm-instances/cdroms/{cd}")
    assert status == 503 and body["error"]["cause"]["code"] == "VM.1010"
    assert len(sim.cdroms(sim.vm("web-1"))) == 3


def test_delete_of_unknown_cdrom_succeeds(sim: SimCtl) -> None:
    # PortApiValidator.java:80-96 @ 5a29293: an unknown UUID of RFC 4122 shape succeeds at once
    assert sim.zstack("DELETE", f"vm-instances/cdroms/{uuid.uuid4().hex}") == (200, {})


def test_delete_cdrom_with_invalid_uuid_fails_sys1003(sim: SimCtl) -> None:
    status, body = sim.zstack("DELETE", "vm-instances/cdroms/not-a-uuid")
    assert status == 503
    assert (
        body["error"]["code"] == "SYS.1003" and body["error"]["details"] == "invalid value[not-a-uuid] of field [uuid]"
    )


# ---- §7.2 UpdateVmCdRom and SetVmInstanceDefaultCdRom


def test_update_cdrom_renames_it(sim: SimCtl) -> None:
    cd = sim.cdroms(sim.vm("web-1"))[1]["uuid"]
    status, body = sim.zstack("PUT", f"vm-instances/cdroms/{cd}/actions", json={"updateVmCdRom": {"name": "tools"}})
    assert status == 200 and body["inventory"]["name"] == "tools"
    assert sim.cdroms(sim.vm("web-1"))[1]["name"] == "tools"


def test_update_unknown_cdrom_fails_sys1003(sim: SimCtl) -> None:
    status, body = sim.zstack("PUT", f"vm-instances/cdroms/{'e' * 32}/actions", json={"updateVmCdRom": {"name": "x"}})
    assert status == 503 and body["error"]["code"] == "SYS.1003"


def test_set_default_cdrom_swaps_device_ids(sim: SimCtl) -> None:
    vm = sim.vm("web-1")
    before = sim.cdroms(vm)
    status, body = sim.zstack(
        "PUT", f"vm-instances/{vm}/cdroms/{before[2]['uuid']}/actions", json={"setVmInstanceDefaultCdRom": {}}
    )
    assert status == 200 and body["inventory"]["deviceId"] == 0
    after = {c["uuid"]: c["deviceId"] for c in sim.cdroms(vm)}
    assert after == {before[0]["uuid"]: 2, before[1]["uuid"]: 1, before[2]["uuid"]: 0}


def test_set_default_on_the_default_cdrom_fails_sys1007(sim: SimCtl) -> None:
    vm = sim.vm("web-1")
    cd = sim.cdroms(vm)[0]["uuid"]
    status, body = sim.zstack("PUT", f"vm-instances/{vm}/cdroms/{cd}/actions", json={"setVmInstanceDefaultCdRom": {}})
    assert status == 503
    assert body["error"]["code"] == "SYS.1007" and body["error"]["details"] == f"The CdRom[{cd}] Already the default"


# ---- DeleteVmCdRom as the node validates it (point 6): VmInstanceBase.java:8274-8347, PortApiValidator.java:74-101


@pytest.mark.parametrize(
    "value",
    # version nibble d, version nibble 0, upper case, version nibble 6, variant nibble c
    ["d" * 32, "00000000000000000000000000000002", "9F1C2B3A4D5E4F60A1B2C3D4E5F60718",
     "9f1c2b3a4d5e6f60a1b2c3d4e5f60718", "9f1c2b3a4d5e4f60c1b2c3d4e5f60718"],
)  # fmt: skip
def test_delete_of_unknown_cdrom_with_a_uuid_not_of_rfc4122_shape_fails_sys1003(sim: SimCtl, value: str) -> None:
    # PortApiValidator.java:81-85 @ 5a29293: [0-9a-f]{8}[0-9a-f]{4}[1-5][0-9a-f]{3}[89ab][0-9a-f]{3}[0-9a-f]{12}
    status, body = sim.zstack("DELETE", f"vm-instances/cdroms/{value}")
    assert status == 503
    assert body["error"]["code"] == "SYS.1003"
    assert body["error"]["details"] == f"invalid value[{value}] of field [uuid]"


def test_delete_of_unknown_cdrom_succeeds_even_with_a_bad_session(sim: SimCtl) -> None:
    # PortApiValidator runs in ApiParamValidator (SYSTEM), before the session check (FRONT): it publishes the
    # success event and stops routing (PortApiValidator.java:88-96 @ 5a29293)
    r = sim.submit("DELETE", f"vm-instances/cdroms/{uuid.uuid4().hex}", headers={"Authorization": "OAuth nope"})
    assert sim.wait(r.json()["location"]) == (200, {})


def test_delete_of_existing_cdrom_with_a_bad_session_fails_id1001(sim: SimCtl) -> None:
    cd = sim.cdroms(sim.vm("db-1"))[1]["uuid"]
    r = sim.submit("DELETE", f"vm-instances/cdroms/{cd}", headers={"Authorization": "OAuth nope"})
    assert sim.wait(r.json()["location"])[1]["error"]["code"] == "ID.1001"
    assert len(sim.cdroms(sim.vm("db-1"))) == 2


def test_delete_cdrom_of_running_vm_names_the_internal_message(sim: SimCtl) -> None:
    # VmInstanceBase.java:8274-8336 @ 5a29293: the API sends DeleteVmCdRomMsg, whose state check
    # (AbstractVmInstance.java:109, L219-231) names it; allowed only in Stopped
    cd = sim.cdroms(sim.vm("web-1"))[0]["uuid"]
    status, body = sim.zstack("DELETE", f"vm-instances/cdroms/{cd}")
    details = (
        "current vm instance state[Running] doesn't allow to proceed message"
        "[org.zstack.header.vm.cdrom.DeleteVmCdRomMsg], allowed states are [Stopped]"
    )
    assert status == 503
    assert body["error"]["code"] == "SYS.1006" and body["error"]["details"] == details
    assert body["error"]["cause"]["code"] == "VM.1010" and body["error"]["cause"]["details"] == details


def test_delete_cdrom_trims_the_uuid(sim: SimCtl) -> None:
    # APIMessage.java:204-226 @ 5a29293: String fields are trimmed before the validators run
    cd = sim.cdroms(sim.vm("db-1"))[1]["uuid"]
    assert sim.zstack("DELETE", f"vm-instances/cdroms/%20{cd}%20") == (200, {})
    assert [c["uuid"] for c in sim.cdroms(sim.vm("db-1"))] == [sim.cdroms(sim.vm("db-1"))[0]["uuid"]]


# ---- DeleteVmCdRom of a CD-ROM holding an ISO (point 13): VmInstanceBase.java:8296-8396, VmCdRomBasicCase


def test_delete_cdrom_holding_an_iso_on_a_stopped_vm_drops_the_iso_and_keeps_other_device_ids(sim: SimCtl) -> None:
    # VmInstanceBase.java:8338-8347 @ 5a29293: existence only, then dbf.removeByPrimaryKey: no ISO check, no
    # detach flow, no renumbering (VmCdRomBasicCase.testDeleteVmCdRom L230-240)
    vm = sim.vm("db-1")
    attach(sim, "db-1", RESCUE)
    holder, other = sim.cdroms(vm)
    assert holder["isoUuid"] == sim.image(RESCUE) and holder["deviceId"] == 0
    assert sim.zstack("DELETE", f"vm-instances/cdroms/{holder['uuid']}") == (200, {})
    assert sim.cdroms(vm) == [other] and other["deviceId"] == 1
    assert sim.zstack("GET", f"images/{sim.image(RESCUE)}")[1]["inventories"][0]["status"] == "Ready"
    status, body = sim.zstack("GET", f"vm-instances/{vm}")
    assert all(c.get("isoUuid") != sim.image(RESCUE) for c in body["inventories"][0]["vmCdRoms"])


def test_cdrom_created_after_a_delete_takes_the_lowest_free_device_id(sim: SimCtl) -> None:
    # VmInstanceBase.java:8349-8396 @ 5a29293 (BitSet.nextClearBit); VmCdRomBasicCase.testCreateVmCdRom L243-257
    vm = sim.vm("db-1")
    first = sim.cdroms(vm)[0]["uuid"]
    assert sim.zstack("DELETE", f"vm-instances/cdroms/{first}") == (200, {})
    status, body = create_cdrom(sim, "db-1")
    assert status == 200 and body["inventory"]["deviceId"] == 0
    assert "isoUuid" not in body["inventory"] and "isoInstallPath" not in body["inventory"]


# ---- side findings: detach keeps protocol; @APIParam errors name ApiMessageParamValidator


def test_detach_keeps_the_cdrom_protocol() -> None:
    # VmInstanceBase.java:4585-4592 (database-only branch) and L4614-4621 (after the flows) @ 5a29293 clear
    # isoUuid and isoInstallPath only
    import json

    seed = json.loads(DEFAULT_SEED_PATH.read_text())
    db1 = next(vm for vm in seed["vmInstances"] if vm["name"] == "db-1")
    db1["cdRoms"][0].update(iso=RESCUE, protocol="file")
    with run_simulator(seed=seed, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        assert detach(sim, "db-1", RESCUE)[0] == 200
        cd = sim.cdroms(sim.vm("db-1"))[0]
        assert cd["protocol"] == "file" and "isoUuid" not in cd and "isoInstallPath" not in cd


def test_missing_mandatory_field_names_the_param_validator(sim: SimCtl) -> None:
    # ApiMessageParamValidator.java:19-21 @ 5a29293 formats message[...] with its own class name
    status, reply = sim.zstack("POST", "vm-instances/cdroms", json={"params": {"vmInstanceUuid": sim.vm("db-1")}})
    assert status == 503 and reply["error"]["details"] == (
        "field[name] of message[org.zstack.header.message.ApiMessageParamValidator] is mandatory, can not be null"
    )
    r = requests.put(f"{sim.api}/accounts/login", json={"logInByAccount": {"accountName": "admin"}}, timeout=5)
    assert r.json()["error"]["details"] == (
        "field[password] of message[org.zstack.header.message.ApiMessageParamValidator] is mandatory, can not be null"
    )


def test_invalid_stop_type_names_the_param_validator(sim: SimCtl) -> None:
    # ApiMessageParamValidator.java:111-116 @ 5a29293 (validValues)
    status, body = sim.zstack("PUT", f"vm-instances/{sim.vm('web-1')}/actions", json={"stopVmInstance": {"type": "x"}})
    assert status == 503 and body["error"]["details"] == (
        "valid value for field[type] of message[org.zstack.header.message.ApiMessageParamValidator] are "
        "[grace, cold], but x found"
    )
