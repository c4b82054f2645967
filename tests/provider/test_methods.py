"""IsoAttachmentProvider's methods, called directly, against the simulator over real HTTP.

The engine-level tests (test_through_host.py) drive the same provider through `python -m pulumi.dynamic`; these
cover each rule of check/diff/create/read/update/delete one at a time, with the message a user gets.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.output import Unknown

from tests.support import holders, named, requests_to, slot, writes
from zstack_iso.errors import IsoAttachmentError
from zstack_iso.provider import IsoAttachmentProvider

NOT_A_UUID = "0123456789abcdef0123456789abcdef"


def make_provider(config: dict[str, str]) -> IsoAttachmentProvider:
    provider = IsoAttachmentProvider()
    provider.configure(ConfigureRequest(Config(config, "zstack-iso")))
    return provider


@pytest.fixture
def provider(sim, monkeypatch):
    for name in ("ZSTACK_HOST", "ZSTACK_ENDPOINT", "ZSTACK_ACCOUNT_NAME", "ZSTACK_ACCOUNT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return make_provider(
        {
            "zstack:endpoint": sim.url,
            "zstack:accountName": "admin",
            "zstack:accountPassword": "password",
            "zstack:jobTimeout": "20",
        }
    )


def attach_out_of_band(sim, vm: str, iso: str, cdrom: str | None = None) -> None:
    body = {"systemTags": [f"cdromUuid::{cdrom}"]} if cdrom else None
    status, answer = sim.zstack("POST", f"vm-instances/{vm}/iso/{iso}", json=body)
    assert status == 200, answer


def detach_out_of_band(sim, vm: str, iso: str) -> None:
    status, answer = sim.zstack("DELETE", f"vm-instances/{vm}/iso", params={"isoUuid": iso})
    assert status == 200, answer


def holder(sim, vm: str, iso: str) -> dict | None:
    found = holders(sim, vm, iso)
    return found[0] if found else None


# -- check -------------------------------------------------------------------------------------------------


def test_check_normalizes_uuid_case_and_accepts_a_missing_cdrom(provider):
    result = provider.check({}, {"vm_uuid": "AB" * 16, "iso_uuid": " " + "cd" * 16 + " "})
    assert result.failures == []
    assert result.inputs["vm_uuid"] == "ab" * 16
    assert result.inputs["iso_uuid"] == "cd" * 16


@pytest.mark.parametrize(
    ("news", "prop", "phrase"),
    [
        ({"iso_uuid": NOT_A_UUID}, "vm_uuid", "vm_uuid is required"),
        ({"vm_uuid": NOT_A_UUID}, "iso_uuid", "iso_uuid is required"),
        ({"vm_uuid": "web-1", "iso_uuid": NOT_A_UUID}, "vm_uuid", "32 hexadecimal characters"),
        ({"vm_uuid": "", "iso_uuid": NOT_A_UUID}, "vm_uuid", "got ''"),
        ({"vm_uuid": 42, "iso_uuid": NOT_A_UUID}, "vm_uuid", "must be a string"),
        ({"vm_uuid": NOT_A_UUID, "iso_uuid": "7105b03e-0979-4680-b7ba-1027f812c987"}, "iso_uuid", "without dashes"),
        ({"vm_uuid": NOT_A_UUID, "iso_uuid": NOT_A_UUID, "cdrom_uuid": ""}, "cdrom_uuid", "omit cdrom_uuid"),
        ({"vm_uuid": NOT_A_UUID, "iso_uuid": NOT_A_UUID, "cdrom_uuid": NOT_A_UUID + "0"}, "cdrom_uuid", "got"),
    ],
)
def test_check_reports_each_bad_property_with_what_a_valid_value_looks_like(provider, news, prop, phrase):
    failures = provider.check({}, news).failures
    assert [f.property for f in failures] == [prop]
    assert phrase in failures[0].reason


def test_check_passes_unknown_values_through_in_a_preview(provider):
    unknown = Unknown()
    result = provider.check({}, {"vm_uuid": unknown, "iso_uuid": NOT_A_UUID, "cdrom_uuid": unknown})
    assert result.failures == []
    assert result.inputs["vm_uuid"] is unknown


# -- create ------------------------------------------------------------------------------------------------


def test_create_attaches_to_the_empty_cdrom_with_the_lowest_device_id(sim, provider):
    vm, iso = sim.vm("web-1"), sim.image("ubuntu-22.04-server.iso")
    result = provider.create({"vm_uuid": vm, "iso_uuid": iso})
    first = sim.cdroms(vm)[0]
    assert result.id == f"{vm}/{iso}"
    token = result.outs.pop("owner_token")
    assert result.outs == {
        "vm_uuid": vm,
        "iso_uuid": iso,
        "cdrom_uuid": first["uuid"],
        "device_id": 0,
        "vm_name": "web-1",
        "iso_name": "ubuntu-22.04-server.iso",
    }
    assert len(token) == 32
    assert first["isoUuid"] == iso


def test_create_uses_the_pinned_cdrom(sim, provider):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    third = sim.cdroms(vm)[2]
    result = provider.create({"vm_uuid": vm, "iso_uuid": iso, "cdrom_uuid": third["uuid"]})
    assert result.outs["cdrom_uuid"] == third["uuid"]
    assert result.outs["device_id"] == 2
    assert holder(sim, vm, iso)["uuid"] == third["uuid"]


def test_create_on_a_stopped_vm_attaches_without_an_install_path(sim, provider):
    vm, iso = sim.vm("db-1"), sim.image("rescue.iso")
    provider.create({"vm_uuid": vm, "iso_uuid": iso})
    slot = holder(sim, vm, iso)
    assert slot is not None and "isoInstallPath" not in slot


def test_create_adopts_an_iso_already_attached_in_the_wanted_slot_without_writing(sim, provider, capsys):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    second = sim.cdroms(vm)[1]["uuid"]
    attach_out_of_band(sim, vm, iso, second)
    sim.clear_journal()
    result = provider.create({"vm_uuid": vm, "iso_uuid": iso, "cdrom_uuid": second})
    assert result.outs["cdrom_uuid"] == second
    assert writes(sim) == []
    assert f"adopted {named('ISO', iso, 'rescue.iso')}" in capsys.readouterr().err


def test_create_refuses_an_attached_iso_pinned_to_another_slot(sim, provider):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    first, third = sim.cdroms(vm)[0]["uuid"], sim.cdroms(vm)[2]["uuid"]
    attach_out_of_band(sim, vm, iso, first)
    where = f"on {named('VM', vm, 'web-1')} is already attached in CD-ROM {first}"
    with pytest.raises(IsoAttachmentError, match=re.escape(where)):
        provider.create({"vm_uuid": vm, "iso_uuid": iso, "cdrom_uuid": third})


def test_a_second_declaration_of_the_same_vm_and_iso_fails_instead_of_adopting_its_twin(sim, provider):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    provider.create({"vm_uuid": vm, "iso_uuid": iso})
    with pytest.raises(IsoAttachmentError, match="declared by two IsoAttachment resources"):
        provider.create({"vm_uuid": vm, "iso_uuid": iso})


def test_create_waits_for_a_vm_in_a_transitional_state(sim, provider):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    sim.hold_state(vm, "Starting", 0.6)
    result = provider.create({"vm_uuid": vm, "iso_uuid": iso})
    assert holder(sim, vm, iso)["uuid"] == result.outs["cdrom_uuid"]


def test_create_gives_up_on_a_vm_that_stays_transitional_past_the_timeout(sim):
    provider = make_provider(
        {
            "zstack:endpoint": sim.url,
            "zstack:accountName": "admin",
            "zstack:accountPassword": "password",
            "zstack:jobTimeout": "0.5",
        }
    )
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    sim.hold_state(vm, "Migrating", 5)
    with pytest.raises(IsoAttachmentError, match=re.escape(f"{named('VM', vm, 'web-1')} stayed Migrating")):
        provider.create({"vm_uuid": vm, "iso_uuid": iso})
    assert writes(sim) == []


PRECONDITIONS = [
    # (vm name or raw uuid, iso name or raw uuid, cdrom picker, expected message); {vm} is how messages name
    # the VM: `VM web-1 (dd4ec5f8…)`, or `VM <uuid>` for a VM the node does not know
    ("missing-vm", "rescue.iso", None, "{vm} does not exist"),
    ("old-1", "rescue.iso", None, "{vm} is Destroyed"),
    ("web-1", "missing-iso", None, "no image with that UUID exists"),
    ("web-1", "centos-7-root", None, "it is a RootVolumeTemplate, not an ISO"),
    ("web-1", "drivers-disabled.iso", None, "the image is Disabled and Ready; it must be Enabled and Ready"),
    ("web-1", "installer-downloading.iso", None, "the image is Enabled and Downloading"),
    ("web-1", "rescue.iso", "web-2's cdrom", "CD-ROM {cdrom} is not a CD-ROM of {vm}"),
    ("web-1", "rescue.iso", "occupied", "CD-ROM {cdrom} (device 0) of {vm} already holds ISO"),
    ("web-2", "rescue.iso", "full", "{vm} has no free CD-ROM"),
    ("legacy-1", "rescue.iso", None, "{vm} has no CD-ROM"),
]


@pytest.mark.parametrize(("vm_name", "iso_name", "cdrom", "message"), PRECONDITIONS)
def test_create_refuses_an_impossible_attachment_before_any_write(sim, provider, vm_name, iso_name, cdrom, message):
    vm = "ee" * 16 if vm_name == "missing-vm" else sim.vm(vm_name)
    iso = "ff" * 16 if iso_name == "missing-iso" else sim.image(iso_name)
    cdrom_uuid = None
    if cdrom == "web-2's cdrom":
        cdrom_uuid = sim.cdroms(sim.vm("web-2"))[0]["uuid"]
    elif cdrom in ("occupied", "full"):
        attach_out_of_band(sim, vm, sim.image("virtio-win-0.1.240.iso"))
        cdrom_uuid = sim.cdroms(vm)[0]["uuid"] if cdrom == "occupied" else None
    sim.clear_journal()
    props = {"vm_uuid": vm, "iso_uuid": iso, **({"cdrom_uuid": cdrom_uuid} if cdrom_uuid else {})}
    with pytest.raises(IsoAttachmentError) as failure:
        provider.create(props)
    vm_named = f"VM {vm}" if vm_name == "missing-vm" else named("VM", vm, vm_name)
    assert message.format(vm=vm_named, cdrom=cdrom_uuid) in str(failure.value)
    assert writes(sim) == []


# -- diff --------------------------------------------------------------------------------------------------


@pytest.fixture
def attached(sim, provider):
    vm, iso = sim.vm("web-1"), sim.image("ubuntu-22.04-server.iso")
    result = provider.create({"vm_uuid": vm, "iso_uuid": iso})
    return result.id, result.outs


def test_diff_of_an_unchanged_attachment_reports_no_change(provider, attached):
    id_, outs = attached
    news = {k: outs[k] for k in ("vm_uuid", "iso_uuid")}
    result = provider.diff(id_, {**outs, "__provider": "old"}, {**news, "__provider": "new"})
    assert result.changes is False and result.replaces == []


def test_diff_replaces_delete_before_replace_when_the_iso_changes(sim, provider, attached):
    id_, outs = attached
    result = provider.diff(id_, outs, {"vm_uuid": outs["vm_uuid"], "iso_uuid": sim.image("rescue.iso")})
    assert result.changes is True
    assert result.replaces == ["iso_uuid"]
    assert result.delete_before_replace is True


def test_diff_replaces_when_the_vm_is_unknown_in_a_preview(provider, attached):
    id_, outs = attached
    result = provider.diff(id_, outs, {"vm_uuid": Unknown(), "iso_uuid": outs["iso_uuid"]})
    assert result.replaces == ["vm_uuid"]


def test_diff_of_a_cdrom_newly_pinned_to_the_slot_in_use_changes_nothing(provider, attached):
    id_, outs = attached
    news = {"vm_uuid": outs["vm_uuid"], "iso_uuid": outs["iso_uuid"], "cdrom_uuid": outs["cdrom_uuid"]}
    assert provider.diff(id_, outs, news).changes is False


def test_diff_of_a_cdrom_pinned_elsewhere_replaces(sim, provider, attached):
    id_, outs = attached
    other = sim.cdroms(outs["vm_uuid"])[2]["uuid"]
    news = {"vm_uuid": outs["vm_uuid"], "iso_uuid": outs["iso_uuid"], "cdrom_uuid": other}
    result = provider.diff(id_, outs, news)
    assert result.replaces == ["cdrom_uuid"] and result.delete_before_replace is True


def test_diff_shows_an_iso_detached_outside_pulumi_as_a_replacement_with_a_warning(sim, provider, attached, capsys):
    id_, outs = attached
    detach_out_of_band(sim, outs["vm_uuid"], outs["iso_uuid"])
    result = provider.diff(id_, outs, {k: outs[k] for k in ("vm_uuid", "iso_uuid")})
    assert result.changes is True and result.replaces == ["iso_uuid"]
    warning = capsys.readouterr().err
    iso, vm = named("ISO", outs["iso_uuid"], "ubuntu-22.04-server.iso"), named("VM", outs["vm_uuid"], "web-1")
    assert f"warning: {iso} on {vm}: detached outside Pulumi" in warning


def test_diff_shows_an_iso_moved_to_another_cdrom(sim, provider, attached, capsys):
    id_, outs = attached
    vm, iso = outs["vm_uuid"], outs["iso_uuid"]
    detach_out_of_band(sim, vm, iso)
    third = sim.cdroms(vm)[2]["uuid"]
    attach_out_of_band(sim, vm, iso, third)
    result = provider.diff(id_, outs, {"vm_uuid": vm, "iso_uuid": iso})
    assert result.replaces == ["iso_uuid"]
    moved = f"moved outside Pulumi from {slot(outs['cdrom_uuid'], 0)} to {slot(third, 2)}"
    assert moved in capsys.readouterr().err


def test_diff_shows_a_destroyed_vm(sim, provider, attached, capsys):
    id_, outs = attached
    status, _ = sim.zstack("DELETE", f"vm-instances/{outs['vm_uuid']}")
    assert status == 200
    assert provider.diff(id_, outs, {k: outs[k] for k in ("vm_uuid", "iso_uuid")}).replaces == ["iso_uuid"]
    assert "the VM is Destroyed" in capsys.readouterr().err


def test_diff_fails_naming_the_endpoint_when_the_node_cannot_be_reached(attached):
    id_, outs = attached
    offline = make_provider(
        {"zstack:endpoint": "http://127.0.0.1:9", "zstack:accountName": "admin", "zstack:accountPassword": "x"}
    )
    with pytest.raises(Exception, match="127.0.0.1:9"):
        offline.diff(id_, outs, {k: outs[k] for k in ("vm_uuid", "iso_uuid")})


def vm_reads(sim, vm: str) -> int:
    return len(requests_to(sim, "GET", f"vm-instances/{vm}"))


def diff_unchanged(provider, created) -> list[str]:
    outs = created.outs
    return provider.diff(created.id, outs, {k: outs[k] for k in ("vm_uuid", "iso_uuid")}).replaces


def test_the_diffs_of_one_deployment_share_one_read_of_each_vm_whatever_their_order(sim, provider):
    web1, db1 = sim.vm("web-1"), sim.vm("db-1")
    isos = [sim.image(name) for name in ("ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso")]
    created = [provider.create({"vm_uuid": vm, "iso_uuid": iso}) for iso in isos for vm in (web1, db1)]
    sim.clear_journal()
    # Round-robin over the VMs, one Diff at a time: no read is in flight when the next Diff asks.
    assert [diff_unchanged(provider, c) for c in created] == [[]] * 4
    assert (vm_reads(sim, web1), vm_reads(sim, db1)) == (1, 1)


def test_the_next_diff_of_an_attachment_reads_the_vm_again_and_sees_a_change_made_by_hand(sim, provider, capsys):
    web1 = sim.vm("web-1")
    ubuntu, virtio = sim.image("ubuntu-22.04-server.iso"), sim.image("virtio-win-0.1.240.iso")
    first, second = (provider.create({"vm_uuid": web1, "iso_uuid": iso}) for iso in (ubuntu, virtio))
    assert diff_unchanged(provider, first) == diff_unchanged(provider, second) == []  # one deployment
    detach_out_of_band(sim, web1, virtio)
    sim.clear_journal()
    # The next deployment, through the same long-lived provider process: each attachment already had the
    # shared read, so the first Diff reads the VM again and the second shares that fresh read.
    assert diff_unchanged(provider, first) == []
    assert diff_unchanged(provider, second) == ["iso_uuid"]
    assert vm_reads(sim, web1) == 1
    assert "detached outside Pulumi" in capsys.readouterr().err


def test_a_read_shared_before_the_provider_attached_is_not_served_after_it(sim, provider, capsys):
    web1 = sim.vm("web-1")
    ubuntu, virtio = sim.image("ubuntu-22.04-server.iso"), sim.image("virtio-win-0.1.240.iso")
    existing = provider.create({"vm_uuid": web1, "iso_uuid": ubuntu})
    assert diff_unchanged(provider, existing) == []  # reads web-1 before virtio is attached
    added = provider.create({"vm_uuid": web1, "iso_uuid": virtio})
    capsys.readouterr()
    assert diff_unchanged(provider, added) == []  # not the read that showed web-1 without virtio
    assert "outside Pulumi" not in capsys.readouterr().err


# -- read, update, delete ----------------------------------------------------------------------------------


def test_read_of_an_unchanged_attachment_keeps_the_stored_inputs(provider, attached):
    id_, outs = attached
    result = provider.read(id_, outs)
    assert (result.id, result.outs, result.inputs) == (id_, outs, None)


def test_read_of_an_iso_moved_outside_pulumi_returns_the_live_slot_as_outputs_and_inputs(sim, provider, attached):
    id_, outs = attached
    vm, iso = outs["vm_uuid"], outs["iso_uuid"]
    detach_out_of_band(sim, vm, iso)
    third = sim.cdroms(vm)[2]["uuid"]
    attach_out_of_band(sim, vm, iso, third)
    result = provider.read(id_, outs)
    assert result.outs == {**outs, "cdrom_uuid": third, "device_id": 2}
    assert result.inputs == {"vm_uuid": vm, "iso_uuid": iso, "cdrom_uuid": third}


def test_read_of_an_iso_detached_outside_pulumi_reports_it_gone(sim, provider, attached):
    id_, outs = attached
    detach_out_of_band(sim, outs["vm_uuid"], outs["iso_uuid"])
    result = provider.read(id_, outs)
    assert (result.id, result.outs) == ("", {})


def test_read_of_a_destroyed_or_expunged_vm_reports_it_gone(sim, provider, attached):
    id_, outs = attached
    assert sim.zstack("DELETE", f"vm-instances/{outs['vm_uuid']}")[0] == 200
    assert provider.read(id_, outs).id == ""
    assert sim.zstack("PUT", f"vm-instances/{outs['vm_uuid']}/actions", json={"expungeVmInstance": {}})[0] == 200
    assert provider.read(id_, {}).id == ""  # falls back to the ID when no outputs are stored


def test_update_keeps_the_outputs(provider, attached):
    id_, outs = attached
    result = provider.update(id_, {**outs, "__provider": "x"}, {"vm_uuid": outs["vm_uuid"]})
    assert result.outs == outs


def test_delete_detaches_the_iso(sim, provider, attached):
    id_, outs = attached
    provider.delete(id_, outs)
    assert holder(sim, outs["vm_uuid"], outs["iso_uuid"]) is None


def test_delete_of_an_already_detached_iso_succeeds_without_writing(sim, provider, attached, capsys):
    id_, outs = attached
    detach_out_of_band(sim, outs["vm_uuid"], outs["iso_uuid"])
    sim.clear_journal()
    provider.delete(id_, outs)
    assert writes(sim) == []
    iso, vm = named("ISO", outs["iso_uuid"], "ubuntu-22.04-server.iso"), named("VM", outs["vm_uuid"], "web-1")
    assert f"{iso} on {vm}: no longer attached" in capsys.readouterr().err


def test_delete_after_the_vm_vanished_succeeds(sim, provider, attached):
    id_, outs = attached
    vm = outs["vm_uuid"]
    assert sim.zstack("DELETE", f"vm-instances/{vm}")[0] == 200
    provider.delete(id_, outs)
    assert sim.zstack("PUT", f"vm-instances/{vm}/actions", json={"expungeVmInstance": {}})[0] == 200
    provider.delete(id_, outs)


def test_a_renamed_attachment_is_not_detached_by_the_delete_of_its_old_name(sim, provider, attached, capsys):
    id_, old_outs = attached
    # The next deployment (a new provider process) creates the new name first: it adopts the attachment...
    next_deployment = make_provider(
        {"zstack:endpoint": sim.url, "zstack:accountName": "admin", "zstack:accountPassword": "password"}
    )
    new = next_deployment.create({k: old_outs[k] for k in ("vm_uuid", "iso_uuid")})
    assert new.outs["owner_token"] != old_outs["owner_token"]
    # ...then deletes the old name, which must leave the ISO where the new one says it is.
    sim.clear_journal()
    next_deployment.delete(id_, old_outs)
    assert writes(sim) == []
    assert holder(sim, old_outs["vm_uuid"], old_outs["iso_uuid"]) is not None
    assert "now managed by another IsoAttachment of this deployment" in capsys.readouterr().err


def test_delete_then_create_of_the_same_pair_in_one_process_is_not_a_twin(provider, attached):
    id_, outs = attached
    provider.delete(id_, outs)
    assert provider.create({"vm_uuid": outs["vm_uuid"], "iso_uuid": outs["iso_uuid"]}).id == id_


# -- configuration -----------------------------------------------------------------------------------------


def test_missing_credentials_fail_at_the_first_call_naming_both_ways_to_set_them(sim, monkeypatch):
    for name in ("ZSTACK_ACCOUNT_NAME", "ZSTACK_ACCOUNT_PASSWORD", "ZSTACK_ACCESS_KEY_ID", "ZSTACK_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    provider = make_provider({"zstack:endpoint": sim.url})
    assert provider.check({}, {"vm_uuid": NOT_A_UUID, "iso_uuid": NOT_A_UUID}).failures == []
    with pytest.raises(IsoAttachmentError) as failure:
        provider.read(f"{NOT_A_UUID}/{NOT_A_UUID}", {})
    message = str(failure.value)
    assert "zstack:accountName" in message and "ZSTACK_ACCOUNT_NAME" in message
    assert "zstack:accessKeyId" in message and "ZSTACK_ACCESS_KEY_ID" in message


def test_conflicting_credentials_are_refused(sim):
    provider = make_provider(
        {
            "zstack:endpoint": sim.url,
            "zstack:accountName": "admin",
            "zstack:accountPassword": "password",
            "zstack:accessKeyId": "id",
            "zstack:accessKeySecret": "secret",
        }
    )
    with pytest.raises(IsoAttachmentError, match="mutually exclusive"):
        provider.read(f"{NOT_A_UUID}/{NOT_A_UUID}", {})


def test_environment_variables_are_the_fallback_for_stack_config(sim, monkeypatch):
    monkeypatch.setenv("ZSTACK_ENDPOINT", sim.url)
    monkeypatch.setenv("ZSTACK_ACCOUNT_NAME", "admin")
    monkeypatch.setenv("ZSTACK_ACCOUNT_PASSWORD", "password")
    provider = make_provider({})
    vm, iso = sim.vm("web-2"), sim.image("rescue.iso")
    assert provider.create({"vm_uuid": vm, "iso_uuid": iso}).outs["device_id"] == 0


def test_access_key_credentials_work(sim):
    key_id, secret = sim.access_key
    provider = make_provider(
        {"zstack:endpoint": sim.url, "zstack:accessKeyId": key_id, "zstack:accessKeySecret": secret}
    )
    vm, iso = sim.vm("web-2"), sim.image("rescue.iso")
    assert provider.create({"vm_uuid": vm, "iso_uuid": iso}).id == f"{vm}/{iso}"


# -- found in review ---------------------------------------------------------------------------------------


def test_a_twin_added_next_to_an_existing_attachment_fails_instead_of_adopting_it(sim, provider, attached):
    id_, outs = attached
    pair = {k: outs[k] for k in ("vm_uuid", "iso_uuid")}
    next_deployment = make_provider(
        {"zstack:endpoint": sim.url, "zstack:accountName": "admin", "zstack:accountPassword": "password"}
    )
    assert next_deployment.diff(id_, outs, pair).changes is False  # the existing resource, unchanged
    with pytest.raises(IsoAttachmentError, match="declared by two IsoAttachment resources"):
        next_deployment.create(pair)


def test_an_attached_iso_is_adopted_even_if_its_image_was_disabled_since(sim, simulator, provider):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    attach_out_of_band(sim, vm, iso)
    simulator.node.inventory.images[iso].state = "Disabled"  # ChangeImageState: nobody may attach it *again*
    sim.clear_journal()
    assert provider.create({"vm_uuid": vm, "iso_uuid": iso}).outs["device_id"] == 0
    assert writes(sim) == []


def test_creates_queued_on_a_stuck_vm_share_one_timeout_instead_of_adding_theirs_up(sim):
    provider = make_provider(
        {
            "zstack:endpoint": sim.url,
            "zstack:accountName": "admin",
            "zstack:accountPassword": "password",
            "zstack:jobTimeout": "1",
        }
    )
    vm = sim.vm("web-1")
    sim.hold_state(vm, "Migrating", 8)
    isos = [sim.image(name) for name in ("ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso", "rescue.iso")]
    started = time.monotonic()
    failures = []

    def create(iso: str) -> None:
        try:
            provider.create({"vm_uuid": vm, "iso_uuid": iso})
        except IsoAttachmentError as err:
            failures.append((time.monotonic() - started, str(err)))

    threads = [threading.Thread(target=create, args=(iso,)) for iso in isos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(failures) == 3
    assert max(elapsed for elapsed, _ in failures) < 1.9  # one shared deadline, not 1 s per queued create
    assert writes(sim) == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("zstack:jobTimeout", "nan", "must be a positive number of seconds"),
        ("zstack:requestTimeout", "inf", "must be a positive number of seconds"),
        ("zstack:endpoint", "https://admin:Canary-S3cret@zstack.example.com", "must not contain user:password@"),
    ],
)
def test_a_setting_that_would_disable_deadlines_or_leak_a_password_is_refused(key, value, message):
    provider = make_provider({"zstack:host": "127.0.0.1", key: value})
    with pytest.raises(IsoAttachmentError, match=message) as failure:
        provider.read(f"{NOT_A_UUID}/{NOT_A_UUID}", {})
    assert "Canary-S3cret" not in str(failure.value)
