"""AttachIsoToVmInstance (§5): wire forms, every error code of §5.2 in the real node's order, and the effects."""

from __future__ import annotations

import re

import pytest

from devkit import SimCtl
from zstack_iso.simulator import run_simulator
from zstack_iso.simulator.seed import DEFAULT_SEED_PATH

UBUNTU, VIRTIO, RESCUE = "ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso", "rescue.iso"
DATE_RE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)$")  # §9


def attach(sim: SimCtl, vm: str, iso: str, **kwargs):
    return sim.zstack("POST", f"vm-instances/{sim.vm(vm)}/iso/{sim.image(iso)}", **kwargs)


def error_of(result: tuple[int, dict]) -> dict:
    status, body = result
    assert status == 503, body
    return body["error"]


def iso_uuids(sim: SimCtl, vm: str) -> list[str | None]:
    return [c.get("isoUuid") for c in sim.cdroms(sim.vm(vm))]


def test_attach_to_running_vm_uses_lowest_empty_cdrom_and_sets_install_path(sim: SimCtl) -> None:
    status, body = attach(sim, "web-1", UBUNTU)
    assert status == 200
    vm = body["inventory"]
    assert vm["name"] == "web-1" and vm["state"] == "Running"
    cdroms = sorted(vm["vmCdRoms"], key=lambda c: c["deviceId"])
    assert cdroms[0]["isoUuid"] == sim.image(UBUNTU)
    assert cdroms[0]["isoInstallPath"].endswith(".iso")
    assert "isoUuid" not in cdroms[1] and "isoInstallPath" not in cdroms[1]  # nulls are omitted (§9)


def test_second_attach_takes_the_next_empty_cdrom(sim: SimCtl) -> None:
    attach(sim, "web-1", UBUNTU)
    assert attach(sim, "web-1", VIRTIO)[0] == 200
    assert iso_uuids(sim, "web-1") == [sim.image(UBUNTU), sim.image(VIRTIO), None]


def test_attach_to_stopped_vm_changes_database_only_without_install_path(sim: SimCtl) -> None:
    status, body = attach(sim, "db-1", RESCUE)
    assert status == 200
    first = sim.cdroms(sim.vm("db-1"))[0]
    assert first["isoUuid"] == sim.image(RESCUE)
    assert "isoInstallPath" not in first


def test_attach_inventory_uses_integers_and_zstack_dates(sim: SimCtl) -> None:
    _, body = attach(sim, "web-1", UBUNTU)
    vm = body["inventory"]
    assert isinstance(vm["memorySize"], int) and isinstance(vm["cpuNum"], int)
    assert all(isinstance(c["deviceId"], int) for c in vm["vmCdRoms"])
    assert DATE_RE.match(vm["createDate"]) and DATE_RE.match(vm["lastOpDate"])
    assert all(v is not None for v in vm.values())


def test_attach_with_top_level_cdrom_tag_targets_that_cdrom(sim: SimCtl) -> None:
    target = sim.cdroms(sim.vm("web-1"))[2]["uuid"]
    status, _ = attach(sim, "web-1", RESCUE, json={"systemTags": [f"cdromUuid::{target}"], "userTags": []})
    assert status == 200
    assert iso_uuids(sim, "web-1") == [None, None, sim.image(RESCUE)]


def test_attach_with_sdk_null_body_form_reads_the_cdrom_tag(sim: SimCtl) -> None:
    target = sim.cdroms(sim.vm("web-1"))[1]["uuid"]
    status, _ = attach(sim, "web-1", RESCUE, json={"null": {"systemTags": [f"cdromUuid::{target}"]}})
    assert status == 200
    assert iso_uuids(sim, "web-1") == [None, sim.image(RESCUE), None]


def test_unknown_system_tags_are_ignored(sim: SimCtl) -> None:
    assert attach(sim, "web-1", RESCUE, json={"systemTags": ["something::else"]})[0] == 200


# ---- §5.2 step 1: resource existence (SYS.1003), before the session check


def test_attach_to_unknown_vm_fails_sys1003_naming_the_field(sim: SimCtl) -> None:
    missing = "0" * 32
    err = error_of(sim.zstack("POST", f"vm-instances/{missing}/iso/{sim.image(RESCUE)}"))
    assert err["code"] == "SYS.1003"
    assert err["description"] == "A resource can not be found"
    assert err["details"] == f"invalid field[vmInstanceUuid], resource[uuid:{missing}, type:VmInstanceVO] not found"


def test_attach_of_unknown_iso_fails_sys1003(sim: SimCtl) -> None:
    missing = "f" * 32
    err = error_of(sim.zstack("POST", f"vm-instances/{sim.vm('web-1')}/iso/{missing}"))
    assert err["code"] == "SYS.1003"
    assert err["details"] == f"invalid field[isoUuid], resource[uuid:{missing}, type:ImageVO] not found"


def test_missing_vm_is_reported_before_a_bad_session(sim: SimCtl) -> None:
    r = sim.submit("POST", f"vm-instances/{'0' * 32}/iso/{sim.image(RESCUE)}", headers={"Authorization": "OAuth nope"})
    assert r.status_code == 202
    assert sim.wait(r.json()["location"])[1]["error"]["code"] == "SYS.1003"


# ---- §5.2 step 2: session


def test_attach_with_unknown_session_is_accepted_then_fails_id1001(sim: SimCtl) -> None:
    r = sim.submit(
        "POST",
        f"vm-instances/{sim.vm('web-1')}/iso/{sim.image(RESCUE)}",
        headers={"Authorization": "OAuth " + "a" * 32},
    )
    assert r.status_code == 202
    status, body = sim.wait(r.json()["location"])
    assert status == 503
    assert body["error"]["code"] == "ID.1001" and body["error"]["details"] == "Session expired"
    assert iso_uuids(sim, "web-1") == [None, None, None]


# ---- §5.2 step 3: interceptor


def test_attach_of_iso_already_on_the_vm_fails_sys1006_in_the_interceptor(sim: SimCtl) -> None:
    attach(sim, "web-1", RESCUE)
    err = error_of(attach(sim, "web-1", RESCUE))
    assert err["code"] == "SYS.1006"
    assert err["details"] == f"VM[uuid:{sim.vm('web-1')}] already has an ISO[uuid:{sim.image(RESCUE)}] attached"


def test_attach_of_root_volume_template_fails_sys1007(sim: SimCtl) -> None:
    err = error_of(attach(sim, "web-1", "centos-7-root"))
    assert err["code"] == "SYS.1007"
    assert err["details"] == "Unsupported Image Media Type: [RootVolumeTemplate] "


@pytest.mark.parametrize(
    ("iso", "words"), [("drivers-disabled.iso", "Disabled"), ("installer-downloading.iso", "Downloading")]
)
def test_strict_attach_refuses_iso_not_enabled_and_ready_sys1006(sim: SimCtl, iso: str, words: str) -> None:
    sim.config(strictAttach=True)  # the open-source node accepts it (see the default-mode tests below)
    err = error_of(attach(sim, "db-1", iso))  # even a Stopped VM (database only) is refused: strict choice
    assert err["code"] == "SYS.1006"
    assert words in err["details"] and "Enabled and Ready" in err["details"]
    assert iso_uuids(sim, "db-1") == [None, None]


def test_attach_to_unknown_tagged_cdrom_fails_sys1006(sim: SimCtl) -> None:
    missing = "c" * 32
    err = error_of(attach(sim, "web-1", RESCUE, json={"systemTags": [f"cdromUuid::{missing}"]}))
    assert err["code"] == "SYS.1006"
    assert err["details"] == f"The cdRom[uuid:{missing}] does not exist"


def test_strict_attach_refuses_cdrom_of_another_vm_sys1006(sim: SimCtl) -> None:
    sim.config(strictAttach=True)  # the open-source node writes into the other VM's CD-ROM (tests below)
    other = sim.cdroms(sim.vm("web-2"))[0]["uuid"]
    err = error_of(attach(sim, "web-1", RESCUE, json={"systemTags": [f"cdromUuid::{other}"]}))
    assert err["code"] == "SYS.1006"
    assert other in err["details"] and "not to VM" in err["details"]
    assert iso_uuids(sim, "web-2") == [None] and iso_uuids(sim, "web-1") == [None, None, None]


def test_attach_to_tagged_cdrom_holding_an_iso_fails_sys1006(sim: SimCtl) -> None:
    target = sim.cdroms(sim.vm("web-1"))[0]["uuid"]
    attach(sim, "web-1", UBUNTU)
    err = error_of(attach(sim, "web-1", RESCUE, json={"systemTags": [f"cdromUuid::{target}"]}))
    assert err["code"] == "SYS.1006"
    assert err["details"] == f"VM[uuid:{sim.vm('web-1')}] cdRom[uuid:{target}] has mounted the ISO"


def test_interceptor_checks_already_attached_before_media_type(sim: SimCtl) -> None:
    # 3a before 3b: an ISO already on the VM with a bad tag reports "already has", not the tag
    attach(sim, "web-1", RESCUE)
    err = error_of(attach(sim, "web-1", RESCUE, json={"systemTags": [f"cdromUuid::{'c' * 32}"]}))
    assert "already has an ISO" in err["details"]


# ---- §5.2 step 4: VM state, inside the queue


def test_attach_to_destroyed_vm_fails_sys1006_with_cause_vm1010(sim: SimCtl) -> None:
    err = error_of(attach(sim, "old-1", RESCUE))
    assert err["code"] == "SYS.1006"
    assert err["cause"]["code"] == "VM.1010"
    assert err["cause"]["description"] == "VM is not in state that allows required operation"
    assert err["details"] == (
        "current vm instance state[Destroyed] doesn't allow to proceed message"
        "[org.zstack.header.vm.AttachIsoToVmInstanceMsg], allowed states are [Running, Stopped, Paused]"
    )
    assert "cost" not in err and "cost" in err["cause"]


def test_attach_to_vm_in_transitional_state_fails_vm1010(sim: SimCtl) -> None:
    sim.hold_state("web-1", "Starting", 5)
    err = error_of(attach(sim, "web-1", RESCUE))
    assert err["cause"]["code"] == "VM.1010" and "state[Starting]" in err["details"]


def test_attach_to_paused_vm_is_allowed(sim: SimCtl) -> None:
    sim.hold_state("web-1", "Paused", 5)
    assert attach(sim, "web-1", RESCUE)[0] == 200


# ---- §5.2 steps 5, 6 and 10


@pytest.mark.parametrize(
    ("vm", "attached"),
    [pytest.param("legacy-1", [], id="no-cdrom"), pytest.param("web-2", [UBUNTU], id="every-cdrom-full")],
)
def test_attach_to_vm_without_an_empty_cdrom_fails_sys1006_all_cdroms_mounted(
    sim: SimCtl, vm: str, attached: list[str]
) -> None:
    for iso in attached:
        attach(sim, vm, iso)
    err = error_of(attach(sim, vm, RESCUE))
    assert err["code"] == "SYS.1006"
    assert err["details"] == f"All vm[uuid:{sim.vm(vm)}] CD-ROMs have mounted ISO"


def _seed_with(**changes) -> dict:
    import json

    seed = json.loads(DEFAULT_SEED_PATH.read_text())
    for key, fn in changes.items():
        fn(seed[key])
    return seed


def test_attach_of_iso_on_no_compatible_backup_storage_fails_step5() -> None:
    def drop_bs(images):
        for image in images:
            if image["name"] == RESCUE:
                image["backupStorages"] = []

    with run_simulator(seed=_seed_with(images=drop_bs), job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        err = error_of(attach(sim, "web-1", RESCUE))
        assert err["code"] == "SYS.1006"
        assert "is on backup storage that is not compatible of the primary storage" in err["details"]


def test_attach_to_running_vm_with_disconnected_backup_storage_fails_step10() -> None:
    def disconnect(bss):
        bss[0]["status"] = "Disconnected"

    with run_simulator(seed=_seed_with(backupStorages=disconnect), job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        err = error_of(attach(sim, "web-1", RESCUE))
        assert err["code"] == "SYS.1006"
        assert err["details"].startswith(
            f"cannot find the iso[uuid:{sim.image(RESCUE)}] in any connected backup storage"
        )
        assert attach(sim, "db-1", RESCUE)[0] == 200  # a Stopped VM needs no download


# ---- §10: races


def _submit_many(sim: SimCtl, requests_: list[tuple[str, str]]) -> list[tuple[int, dict]]:
    """Submit every request before polling any, so all pass the interceptor before the first job ends."""
    locations = [sim.submit(m, p).json()["location"] for m, p in requests_]
    return [sim.wait(loc) for loc in locations]


def test_two_simultaneous_attaches_of_same_iso_race_to_has_attached_iso(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.2)
    path = f"vm-instances/{sim.vm('web-1')}/iso/{sim.image(RESCUE)}"
    first, second = _submit_many(sim, [("POST", path), ("POST", path)])
    assert first[0] == 200
    assert second[0] == 503
    assert second[1]["error"]["details"] == f"VM[uuid:{sim.vm('web-1')}] has attached ISO[uuid:{sim.image(RESCUE)}]"
    assert iso_uuids(sim, "web-1").count(sim.image(RESCUE)) == 1


def test_two_attaches_racing_for_the_last_cdrom_one_wins_one_gets_no_free_cdrom(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.2)
    vm = sim.vm("web-2")
    first, second = _submit_many(
        sim,
        [
            ("POST", f"vm-instances/{vm}/iso/{sim.image(UBUNTU)}"),
            ("POST", f"vm-instances/{vm}/iso/{sim.image(RESCUE)}"),
        ],
    )
    assert first[0] == 200
    assert second[1]["error"]["details"] == f"All vm[uuid:{vm}] CD-ROMs have mounted ISO"
    assert iso_uuids(sim, "web-2") == [sim.image(UBUNTU)]


# ---- point 8: by default, what the open-source node does (VmInstanceApiInterceptor.java:764-796,
# VmInstanceBase.java:4892-5004 @ 5a29293); `strictAttach` keeps the former, stricter answers


@pytest.mark.parametrize("iso", ["drivers-disabled.iso", "installer-downloading.iso"])
def test_attach_of_iso_not_enabled_and_ready_to_stopped_vm_is_accepted_database_only(sim: SimCtl, iso: str) -> None:
    # VmInstanceApiInterceptor.java:764-776 checks "already attached" and the media type only; attachIso writes a
    # Stopped VM's CD-ROM in the database (VmInstanceBase.java:4914-4920), checkIfIsoAttachable (L4968-5004)
    # looks for a backup storage ref but not at its status
    status, body = attach(sim, "db-1", iso)
    assert status == 200
    first = sim.cdroms(sim.vm("db-1"))[0]
    assert first["isoUuid"] == sim.image(iso) and "isoInstallPath" not in first


def test_attach_of_disabled_iso_to_running_vm_is_accepted(sim: SimCtl) -> None:
    # ImageBackupStorageSelector.java:56-72 @ 5a29293 looks at the backup storage and the ref, not the image state
    assert attach(sim, "web-1", "drivers-disabled.iso")[0] == 200
    assert sim.cdroms(sim.vm("web-1"))[0]["isoInstallPath"]


def test_attach_of_downloading_iso_to_running_vm_fails_its_download(sim: SimCtl) -> None:
    # VmDownloadIsoFlow.java:69-77 @ 5a29293 then finds no Ready ref to download from; the node's answer was not
    # traced (UNCONFIRMED): the simulator fails the job with SYS.1006 and its own wording
    err = error_of(attach(sim, "web-1", "installer-downloading.iso"))
    assert err["code"] == "SYS.1006" and "Downloading" in err["details"]
    assert iso_uuids(sim, "web-1") == [None, None, None]


def test_attach_with_cdrom_tag_of_another_vm_writes_into_that_vms_cdrom(sim: SimCtl) -> None:
    # VmInstanceApiInterceptor.java:778-796 @ 5a29293 checks that the tagged CD-ROM exists and is empty, not whose
    # it is; VmInstanceBase.attachIso (L4906-4910) loads it with dbf.findByUuid and writes the ISO into it; the
    # event carries this VM's inventory (L4869-4890)
    other = sim.cdroms(sim.vm("web-2"))[0]["uuid"]
    status, body = attach(sim, "web-1", RESCUE, json={"systemTags": [f"cdromUuid::{other}"]})
    assert status == 200
    assert body["inventory"]["uuid"] == sim.vm("web-1")
    assert all("isoUuid" not in c for c in body["inventory"]["vmCdRoms"])
    assert iso_uuids(sim, "web-1") == [None, None, None]
    (written,) = sim.cdroms(sim.vm("web-2"))
    assert written["isoUuid"] == sim.image(RESCUE) and written["isoInstallPath"]  # web-1 runs: the hypervisor path


def test_attach_with_cdrom_tag_of_another_vm_still_needs_an_empty_cdrom_on_this_vm(sim: SimCtl) -> None:
    # IsoOperator.checkAttachIsoToVm (IsoOperator.java:36-50 @ 5a29293) looks at this VM's CD-ROMs
    other = sim.cdroms(sim.vm("web-2"))[0]["uuid"]
    err = error_of(attach(sim, "legacy-1", RESCUE, json={"systemTags": [f"cdromUuid::{other}"]}))
    assert err["details"] == f"All vm[uuid:{sim.vm('legacy-1')}] CD-ROMs have mounted ISO"
    assert iso_uuids(sim, "web-2") == [None]


@pytest.mark.parametrize("tag", ["cdromUuid::", "cdromUuid::a::b", "CDROMUUID::x", "xcdromUuid::y"])
def test_tags_that_do_not_match_the_cdrom_tag_format_are_ignored(sim: SimCtl, tag: str) -> None:
    # SystemTagUtils.java:19-31 and TagUtils.isMatch (TagUtils.java:33-67 @ 5a29293): Java's split("::") drops
    # trailing empty parts, and a tag matches only with as many parts as `cdromUuid::{cdromUuid}`
    assert attach(sim, "web-1", RESCUE, json={"systemTags": [tag]})[0] == 200
    assert iso_uuids(sim, "web-1") == [sim.image(RESCUE), None, None]


def test_first_matching_cdrom_tag_wins(sim: SimCtl) -> None:
    cdroms = sim.cdroms(sim.vm("web-1"))
    tags = ["cdromUuid::", f"cdromUuid::{cdroms[2]['uuid']}", f"cdromUuid::{cdroms[1]['uuid']}"]
    assert attach(sim, "web-1", RESCUE, json={"systemTags": tags})[0] == 200
    assert iso_uuids(sim, "web-1") == [None, None, sim.image(RESCUE)]


def test_tagged_cdrom_is_not_checked_again_in_the_queue_so_a_race_overwrites(sim: SimCtl) -> None:
    # VmInstanceBase.attachIso (L4892-4966 @ 5a29293) does not re-check the tagged CD-ROM inside the VM's queue
    sim.config(jobSeconds=0.2)
    vm, target = sim.vm("web-1"), sim.cdroms(sim.vm("web-1"))[2]["uuid"]
    body = {"systemTags": [f"cdromUuid::{target}"]}
    locations = [
        sim.submit("POST", f"vm-instances/{vm}/iso/{sim.image(iso)}", json=body).json()["location"]
        for iso in (UBUNTU, RESCUE)
    ]
    assert [sim.wait(loc)[0] for loc in locations] == [200, 200]
    assert iso_uuids(sim, "web-1") == [None, None, sim.image(RESCUE)]


def test_strict_attach_checks_the_tagged_cdrom_again_in_the_queue(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.2, strictAttach=True)
    vm, target = sim.vm("web-1"), sim.cdroms(sim.vm("web-1"))[2]["uuid"]
    body = {"systemTags": [f"cdromUuid::{target}"]}
    locations = [
        sim.submit("POST", f"vm-instances/{vm}/iso/{sim.image(iso)}", json=body).json()["location"]
        for iso in (UBUNTU, RESCUE)
    ]
    (first, _), (second, error) = [sim.wait(loc) for loc in locations]
    assert (first, second) == (200, 503)
    assert error["error"]["details"] == f"VM[uuid:{vm}] cdRom[uuid:{target}] has mounted the ISO"
    assert iso_uuids(sim, "web-1") == [None, None, sim.image(UBUNTU)]


def test_create_cdrom_with_a_disabled_iso_is_accepted_unless_strict(sim: SimCtl) -> None:
    # VmInstanceBase.doCreateVmCdRom (L8349-8396 @ 5a29293) checks duplicates and the count only
    body = {"params": {"name": "cd-x", "vmInstanceUuid": sim.vm("db-1"), "isoUuid": sim.image("drivers-disabled.iso")}}
    sim.config(strictAttach=True)
    assert error_of(sim.zstack("POST", "vm-instances/cdroms", json=body))["code"] == "SYS.1006"
    sim.config(strictAttach=False)
    status, reply = sim.zstack("POST", "vm-instances/cdroms", json=body)
    assert status == 200 and reply["inventory"]["isoUuid"] == sim.image("drivers-disabled.iso")


def test_strict_attach_is_a_start_up_option_that_reset_restores() -> None:
    with run_simulator(job_seconds=0.01, strict_attach=True) as s:
        sim = SimCtl(s.url)
        assert sim.config()["strictAttach"] is True
        sim.config(strictAttach=False)
        sim.reset()
        assert sim.config()["strictAttach"] is True
        assert error_of(attach(sim, "db-1", "drivers-disabled.iso"))["code"] == "SYS.1006"
