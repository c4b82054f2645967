"""DeleteImage, ExpungeImage, RecoverImage and ChangeImageState on an ISO (points 9 and 10), as the open-source
node runs them ([Z] image/src/main/java/org/zstack/image/ImageBase.java @ 5a29293, default deletion policy Delay)."""

from __future__ import annotations

import uuid

import requests

from devkit import SimCtl
from tests.support import default_seed
from zstack_iso.simulator import run_simulator

RESCUE, UBUNTU = "rescue.iso", "ubuntu-22.04-server.iso"


def attach(sim: SimCtl, vm: str, iso: str) -> None:
    status, body = sim.zstack("POST", f"vm-instances/{sim.vm(vm)}/iso/{sim.image(iso)}")
    assert status == 200, body


def holders(sim: SimCtl, iso_uuid: str) -> list[str]:
    return [c["vmInstanceUuid"] for c in sim.inventory()["vmCdRoms"] if c.get("isoUuid") == iso_uuid]


def image_row(sim: SimCtl, image_uuid: str) -> dict | None:
    status, body = sim.zstack("GET", f"images/{image_uuid}")
    assert status == 200
    return body["inventories"][0] if body["inventories"] else None


def error_of(result: tuple[int, dict]) -> dict:
    status, body = result
    assert status == 503, body
    return body["error"]


# ---- DeleteImage (point 9)


def test_delete_iso_detaches_it_from_every_vm_and_reads_back_deleted(sim: SimCtl) -> None:
    # DeleteIsoCase.testDeleteIso (L139-190): after deleteImage no VM holds the ISO; ImageBase.java:412-456 sends
    # DetachIsoFromVmInstanceMsg to every holder, L493 marks each ref Deleted, L525-531 the image
    iso = sim.image(RESCUE)
    for vm in ("web-1", "web-2", "db-1"):
        attach(sim, vm, RESCUE)
    cdroms_before = len(sim.inventory()["vmCdRoms"])
    assert sim.delete_image(iso) == (200, {})
    assert holders(sim, iso) == []
    assert len(sim.inventory()["vmCdRoms"]) == cdroms_before  # the CD-ROM rows stay
    assert all("isoInstallPath" not in c for c in sim.cdroms(sim.vm("web-1")))
    row = image_row(sim, iso)
    assert row["status"] == "Deleted" and row["state"] == "Enabled"  # state untouched
    assert [r["status"] for r in row["backupStorageRefs"]] == ["Deleted"]


def test_delete_iso_detaches_it_from_a_destroyed_vm_too(sim: SimCtl) -> None:
    # IsoBasicCase.testAttach3Iso (L229-235): destroyVmInstance, then deleteImage of the attached ISO succeeds;
    # the internal detach has no state check (VmInstanceBase.java:4507-4522) and is database only when Destroyed
    attach(sim, "web-2", RESCUE)
    assert sim.destroy_vm("web-2") == (200, {})
    assert holders(sim, sim.image(RESCUE)) == [sim.vm("web-2")]
    assert sim.delete_image(RESCUE) == (200, {})
    assert holders(sim, sim.image(RESCUE)) == []


def test_delete_keeps_the_protocol_of_the_cdroms_it_detaches() -> None:
    # the internal detach clears isoUuid and isoInstallPath only (VmInstanceBase.java:4585-4592)
    seed = default_seed()
    db1 = next(vm for vm in seed["vmInstances"] if vm["name"] == "db-1")
    db1["cdRoms"][0].update(iso=RESCUE, protocol="file")
    with run_simulator(seed=seed, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        assert sim.delete_image(RESCUE) == (200, {})
        cd = sim.cdroms(sim.vm("db-1"))[0]
        assert cd["protocol"] == "file" and "isoUuid" not in cd


def test_deleted_iso_is_no_longer_an_attach_candidate(sim: SimCtl) -> None:
    # VmInstanceBase.getImageCandidatesForVm (L3185-3226): state Enabled and status Ready only
    sim.delete_image(RESCUE)
    body = sim.zstack("GET", f"vm-instances/{sim.vm('web-1')}/iso-candidates")[1]
    assert RESCUE not in [i["name"] for i in body["inventories"]]


def test_detach_of_a_deleted_iso_still_succeeds(sim: SimCtl) -> None:
    # APIDetachIsoFromVmInstanceMsg.isoUuid has no resourceType; detachIso of an ISO not on the VM is a no-op
    # (VmInstanceBase.java:4568-4629); also once the image is expunged
    iso = sim.image(RESCUE)
    attach(sim, "web-1", RESCUE)
    sim.delete_image(iso)
    path = f"vm-instances/{sim.vm('web-1')}/iso"
    assert sim.zstack("DELETE", path, params={"isoUuid": iso})[0] == 200
    sim.expunge_image(iso)
    status, body = sim.zstack("DELETE", path, params={"isoUuid": iso})
    assert status == 200 and body["inventory"]["uuid"] == sim.vm("web-1")


def test_delete_of_unknown_image_succeeds_or_fails_sys1003_by_the_uuid_shape(sim: SimCtl) -> None:
    # APIDeleteImageMsg.java:22 successIfResourceNotExisting; PortApiValidator.java:74-101
    assert sim.delete_image(uuid.uuid4().hex) == (200, {})
    err = error_of(sim.delete_image("f" * 32, check=False))
    assert err["code"] == "SYS.1003" and err["details"] == f"invalid value[{'f' * 32}] of field [uuid]"


def test_delete_of_downloading_iso_removes_it_at_once_and_nulls_cdroms(sim: SimCtl) -> None:
    # ImageOperationsCase.testDeleteDownloadingImage (L223-260); ImageBase.java:376-390 hard-deletes an image whose
    # refs are all Creating/Downloading, without the detach flow; VmCdRomVO.isoUuid is ON DELETE SET NULL
    iso = sim.image("installer-downloading.iso")
    attach(sim, "db-1", "installer-downloading.iso")  # accepted on a Stopped VM (point 8)
    assert sim.delete_image(iso) == (200, {})
    assert image_row(sim, iso) is None
    assert holders(sim, iso) == [] and len(sim.cdroms(sim.vm("db-1"))) == 2


def test_delete_of_an_already_deleted_iso_succeeds(sim: SimCtl) -> None:
    sim.delete_image(RESCUE)
    assert sim.delete_image(RESCUE) == (200, {})
    assert image_row(sim, sim.image(RESCUE))["status"] == "Deleted"


def test_attach_of_a_deleted_iso_is_accepted_on_a_stopped_vm_and_refused_on_a_running_one(sim: SimCtl) -> None:
    # point 8 and ImageBase L493: the refs stay (Deleted); a Stopped VM is written in the database only, a Running
    # VM needs ImageBackupStorageSelector (L56-72: ref status != Deleted) in VmDownloadIsoFlow (L60-66)
    iso = sim.image(RESCUE)
    sim.delete_image(iso)
    attach(sim, "db-1", RESCUE)
    assert holders(sim, iso) == [sim.vm("db-1")]
    err = error_of(sim.zstack("POST", f"vm-instances/{sim.vm('web-1')}/iso/{iso}"))
    assert err["code"] == "SYS.1006"
    assert err["details"] == (
        f"cannot find the iso[uuid:{iso}] in any connected backup storage attached to the zone"
        f"[uuid:{sim.inventory()['vmInstances'][0]['zoneUuid']}]. check below:\n"
        f"1. if the backup storage is attached to the zone where the VM[name: web-1, uuid:{sim.vm('web-1')}] is "
        "running\n2. if the backup storage is in connected status, if not, try reconnecting it"
    )
    sim.config(strictAttach=True)
    assert error_of(sim.zstack("POST", f"vm-instances/{sim.vm('web-2')}/iso/{iso}"))["code"] == "SYS.1006"


# ---- RecoverImage and ExpungeImage (point 9)


def test_recover_makes_the_iso_ready_but_attaches_it_nowhere(sim: SimCtl) -> None:
    # ImageOperationsCase.testDeleteImage (L187-195); ImageBase.java:745-801 sets the refs and the image Ready
    iso = sim.image(RESCUE)
    attach(sim, "web-1", RESCUE)
    sim.delete_image(iso)
    status, body = sim.recover_image(iso)
    assert status == 200
    assert body["inventory"]["uuid"] == iso and body["inventory"]["status"] == "Ready"
    assert [r["status"] for r in body["inventory"]["backupStorageRefs"]] == ["Ready"]
    assert holders(sim, iso) == []
    assert image_row(sim, iso)["status"] == "Ready"


def test_recover_or_expunge_of_an_iso_that_is_not_deleted_fails_sys1006(sim: SimCtl) -> None:
    # ImageBase.java:756 and L817
    iso = sim.image(RESCUE)
    for result in (sim.recover_image(iso, check=False), sim.expunge_image(iso, check=False)):
        err = error_of(result)
        assert err["code"] == "SYS.1006"
        assert err["details"] == f"the image[uuid:{iso}, name:{RESCUE}] is not deleted on any backup storage"


def test_expunge_removes_the_iso_from_queries(sim: SimCtl) -> None:
    # ImageOperationsCase.testDeleteImage (L197-210); ImageBase.java:803-868 and ExpungeImageMsg L285-347 (the
    # ref is removed; with none left the ImageVO is deleted, L335)
    iso = sim.image(RESCUE)
    sim.delete_image(iso)
    assert sim.expunge_image(iso) == (200, {})
    assert image_row(sim, iso) is None
    assert sim.zstack("GET", "images", params={"q": f"uuid={iso}", "count": "true"})[1]["total"] == 0
    err = error_of(sim.expunge_image(iso, check=False))  # APIExpungeImageMsg.imageUuid must exist
    assert err["code"] == "SYS.1003"
    assert err["details"] == f"invalid field[imageUuid], resource[uuid:{iso}, type:ImageVO] not found"
    assert sim.delete_image(iso) == (200, {})  # successIfResourceNotExisting


def two_backup_storage_seed() -> dict:
    seed = default_seed()
    seed["backupStorages"].append({"name": "imagestore-2", "zones": ["zone-1"], "url": "/zstack_bs2"})
    for image in seed["images"]:
        if image["name"] == RESCUE:
            image["backupStorages"] = ["imagestore-1", "imagestore-2"]
    return seed


def test_delete_on_one_backup_storage_detaches_but_keeps_the_image_ready() -> None:
    # ImageBase.java:395-408 (only the named refs), L412-456 (the detach runs anyway), L525-531 (Deleted only when
    # no ref is left that is not Deleted); Recover/Expunge with named backup storages (L759-779, L822-844)
    with run_simulator(seed=two_backup_storage_seed(), job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        iso = sim.image(RESCUE)
        row = image_row(sim, iso)
        bs1, bs2 = (r["backupStorageUuid"] for r in row["backupStorageRefs"])
        attach(sim, "web-1", RESCUE)
        assert sim.delete_image(iso, backup_storage_uuids=[bs2]) == (200, {})
        row = image_row(sim, iso)
        assert row["status"] == "Ready" and [r["status"] for r in row["backupStorageRefs"]] == ["Ready", "Deleted"]
        assert holders(sim, iso) == []
        err = error_of(sim.recover_image(iso, backup_storage_uuids=[bs1], check=False))
        assert err["code"] == "SYS.1007"
        assert err["details"] == (
            f"the image[uuid:{iso}, name:{RESCUE}]'s status[Ready] is not Deleted on the backup storage[uuid:{bs1}]"
        )
        err = error_of(sim.expunge_image(iso, backup_storage_uuids=[bs1], check=False))
        who = f"the image[uuid:{iso}, name:{RESCUE}]"
        assert err["details"] == f"{who} is not deleted on the backup storage[uuid:{bs1}]"
        assert sim.expunge_image(iso, backup_storage_uuids=[bs2]) == (200, {})
        assert [r["backupStorageUuid"] for r in image_row(sim, iso)["backupStorageRefs"]] == [bs1]


def test_delete_naming_an_unknown_backup_storage_fails_sys1003(sim: SimCtl) -> None:
    # PortApiValidator.java:40-66 @ 5a29293: a list field names the uuids that were not found
    status, body = sim.zstack(
        "DELETE", f"images/{sim.image(RESCUE)}", params=[("backupStorageUuids", "a" * 32), ("backupStorageUuids", "b")]
    )
    assert status == 503 and body["error"]["code"] == "SYS.1003"
    assert body["error"]["details"] == (
        f"invalid field[backupStorageUuids], resource[uuids:[{'a' * 32}, b], type:BackupStorageVO] not found"
    )
    assert image_row(sim, sim.image(RESCUE))["status"] == "Ready"


# ---- ChangeImageState (point 10)


def test_disabling_an_attached_iso_changes_only_its_state(sim: SimCtl) -> None:
    # ImageBase.java:943-955: state set, inventory returned; nothing touches VmCdRomVO
    iso = sim.image(RESCUE)
    attach(sim, "web-1", RESCUE)
    status, body = sim.change_image_state(iso, "disable")
    assert status == 200
    assert body["inventory"]["state"] == "Disabled" and body["inventory"]["status"] == "Ready"
    assert holders(sim, iso) == [sim.vm("web-1")]
    assert sim.cdroms(sim.vm("web-1"))[0]["isoInstallPath"]
    candidates = sim.zstack("GET", f"vm-instances/{sim.vm('web-2')}/iso-candidates")[1]["inventories"]
    assert RESCUE not in [i["name"] for i in candidates]  # getImageCandidatesForVm: Enabled only
    assert sim.change_image_state(iso, "enable")[1]["inventory"]["state"] == "Enabled"


def test_a_deleted_iso_can_change_state(sim: SimCtl) -> None:
    iso = sim.image(RESCUE)
    sim.delete_image(iso)
    assert sim.change_image_state(iso, "disable")[1]["inventory"]["state"] == "Disabled"
    assert image_row(sim, iso)["status"] == "Deleted"


def test_change_image_state_with_invalid_state_event_fails_sys1007(sim: SimCtl) -> None:
    # APIChangeImageStateMsg.java:26-27 validValues {"enable", "disable"}, case-sensitive;
    # ApiMessageParamValidator.java:111-116 names itself
    err = error_of(sim.change_image_state(sim.image(RESCUE), "Disable", check=False))
    assert err["code"] == "SYS.1007"
    assert err["details"] == (
        "valid value for field[stateEvent] of message[org.zstack.header.message.ApiMessageParamValidator] are "
        "[enable, disable], but Disable found"
    )
    status, body = sim.zstack("PUT", f"images/{sim.image(RESCUE)}/actions", json={"changeImageState": {}})
    assert body["error"]["details"] == (
        "field[stateEvent] of message[org.zstack.header.message.ApiMessageParamValidator] is mandatory, can not be null"
    )
    assert image_row(sim, sim.image(RESCUE))["state"] == "Enabled"


def test_image_actions_on_unknown_image_fail_sys1003(sim: SimCtl) -> None:
    missing = uuid.uuid4().hex
    err = error_of(sim.change_image_state(missing, "disable", check=False))
    assert err["details"] == f"invalid field[uuid], resource[uuid:{missing}, type:ImageVO] not found"
    err = error_of(sim.recover_image(missing, check=False))
    assert err["details"] == f"invalid field[imageUuid], resource[uuid:{missing}, type:ImageVO] not found"


def test_image_results_carry_the_image_schema_with_the_header(sim: SimCtl) -> None:
    r = sim.submit("PUT", f"images/{sim.image(RESCUE)}/actions", json={"changeImageState": {"stateEvent": "disable"}})
    sim.wait(r.json()["location"])
    body = requests.get(r.json()["location"], headers={"X-JSON-Schema": "true"}, timeout=5).json()
    assert body["schema"] == {
        "inventory": "org.zstack.header.image.ImageInventory",
        "inventory.backupStorageRefs[0]": "org.zstack.header.image.ImageBackupStorageRefInventory",
    }


def test_other_image_actions_are_not_implemented(sim: SimCtl) -> None:
    r = sim.submit("PUT", f"images/{sim.image(RESCUE)}/actions", json={"updateImage": {"name": "x"}})
    assert r.status_code == 501
