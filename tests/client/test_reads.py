"""Reads through ZStackClient: typed inventories, queries, and retries of GETs, against the simulator."""

from __future__ import annotations

import pytest

from tests.client.calls import get_cdrom, get_iso_candidates, list_cdroms
from tests.support import requests_to
from zstack_iso.client import ZStackClient
from zstack_iso.errors import ZStackError
from zstack_iso.models import Image, VmInstance


def test_get_vm_returns_a_typed_inventory_with_sorted_cdroms(sim, client):
    vm = client.get_vm(sim.vm("web-1"))
    assert isinstance(vm, VmInstance)
    assert vm.name == "web-1" and vm.state == "Running"
    assert [c.device_id for c in vm.cdroms] == [0, 1, 2]
    assert all(c.vm_instance_uuid == vm.uuid for c in vm.cdroms)


def test_get_vm_of_an_unknown_uuid_is_none(client):
    assert client.get_vm("0123456789abcdef0123456789abcdef") is None


def test_destroyed_vm_is_still_returned_with_its_state(sim, client):
    assert client.get_vm(sim.vm("old-1")).state == "Destroyed"


def test_get_image_reads_media_type_state_and_status(sim, client):
    iso = client.get_image(sim.image("ubuntu-22.04-server.iso"))
    assert isinstance(iso, Image) and iso.is_iso and iso.is_enabled_and_ready
    disabled = client.get_image(sim.image("drivers-disabled.iso"))
    assert disabled.is_iso and disabled.state == "Disabled" and not disabled.is_enabled_and_ready
    template = client.get_image(sim.image("centos-7-root"))
    assert not template.is_iso and template.media_type == "RootVolumeTemplate"
    assert client.get_image("0123456789abcdef0123456789abcdef") is None


def test_list_cdroms_is_sorted_by_device_id(sim, client):
    vm_uuid = sim.vm("web-1")
    cdroms = list_cdroms(client, vm_uuid)
    assert [c.device_id for c in cdroms] == [0, 1, 2]
    assert [c.uuid for c in cdroms] == [c["uuid"] for c in sim.cdroms(vm_uuid)]
    assert list_cdroms(client, sim.vm("legacy-1")) == []


def test_query_by_keyword_and_raw_conditions(sim, client):
    assert [vm.name for vm in client.query_vms(name="web-1")] == ["web-1"]
    running = {vm.name for vm in client.query_vms(state="Running")}
    assert {"web-1", "web-2", "legacy-1"} <= running and "db-1" not in running
    isos = {image.name for image in client.query_images(media_type="ISO")}
    assert "rescue.iso" in isos and "centos-7-root" not in isos
    rows = client.query("vm-instances", "name~=web-%", sort="+name")
    assert [row["name"] for row in rows] == ["web-1", "web-2"]
    assert len(client.query("images", limit=2)) == 2


def test_iso_candidates_exclude_disabled_not_ready_and_attached_isos(sim, client):
    vm_uuid = sim.vm("web-1")
    client.attach_iso(vm_uuid, sim.image("rescue.iso"))
    names = {image.name for image in get_iso_candidates(client, vm_uuid)}
    assert names == {"ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso"}


@pytest.mark.parametrize("status", [502, 503, 504])
def test_read_is_retried_after_a_gateway_error_without_a_zstack_body(sim, client, status):
    vm_uuid = sim.vm("web-1")
    client.get_vm(vm_uuid)  # log in first
    sim.clear_journal()
    sim.fault(method="GET", pathRegex="/vm-instances/" + vm_uuid, action="http_status", status=status, times=2)
    assert client.get_vm(vm_uuid).name == "web-1"
    answered = [r["status"] for r in requests_to(sim, "GET", "/vm-instances/" + vm_uuid)]
    assert answered.count(status) == 2  # both faults were met, and the third try succeeded


def test_read_is_retried_after_a_dropped_connection(sim, client):
    vm_uuid = sim.vm("web-1")
    client.get_vm(vm_uuid)
    sim.fault(method="GET", pathRegex="/vm-instances/" + vm_uuid, action="drop_connection")
    assert client.get_vm(vm_uuid).name == "web-1"


def test_zstack_error_answer_to_a_read_is_not_retried(sim, client):
    vm_uuid = sim.vm("web-1")
    client.get_vm(vm_uuid)
    sim.clear_journal()
    body = {"error": {"code": "SYS.1000", "description": "An internal error happened in system", "details": "x"}}
    sim.fault(method="GET", pathRegex="/vm-instances/" + vm_uuid, action="http_status", status=503, body=body)
    with pytest.raises(ZStackError) as info:
        client.get_vm(vm_uuid)
    assert info.value.code == "SYS.1000" and info.value.http_status == 503
    client.get_vm(vm_uuid)  # the next request on the same connection follows the 503 in the journal
    answered = [r["status"] for r in requests_to(sim, "GET", "/vm-instances/" + vm_uuid)]
    assert answered.count(503) == 1


def test_reads_give_up_after_a_bounded_number_of_retries(sim):
    with ZStackClient(sim.url, account_name="admin", account_password="password", retries=2) as client:
        vm_uuid = sim.vm("web-1")
        client.get_vm(vm_uuid)
        sim.clear_journal()
        sim.fault(method="GET", pathRegex="/vm-instances/" + vm_uuid, action="http_status", status=503, times=10)
        with pytest.raises(ZStackError) as info:
            client.get_vm(vm_uuid)
        sim.clear_faults()
        client.get_vm(vm_uuid)  # the next request on the same connection follows the 503s in the journal
    assert info.value.code == "CLIENT.UNREACHABLE" and info.value.http_status == 503
    assert sim.url in str(info.value)
    answered = [r["status"] for r in requests_to(sim, "GET", "/vm-instances/" + vm_uuid)]
    assert answered.count(503) == 3  # one try and two retries


def test_plain_text_http_error_is_reported_with_its_status_and_text(sim, client):
    client.get_vm(sim.vm("web-1"))
    with pytest.raises(ZStackError) as info:
        client.query("no-such-resources")
    assert info.value.code == "CLIENT.HTTP" and info.value.http_status == 404
    assert "no api mapping" in str(info.value).lower() or "404" in str(info.value)


def test_get_with_an_empty_uuid_finds_nothing_instead_of_the_first_vm(client):
    assert client.get_vm("") is None
    assert client.get_image("") is None
    assert get_cdrom(client, "") is None and client.get_vm("   ") is None


def test_get_by_uuid_returns_exactly_the_asked_for_vm_image_and_cdrom(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image("rescue.iso")
    cdroms = sim.cdroms(vm_uuid)
    assert client.get_vm(vm_uuid).uuid == vm_uuid
    assert client.get_image(iso).uuid == iso and client.get_image(iso).name == "rescue.iso"
    for wire in cdroms:
        cdrom = get_cdrom(client, wire["uuid"])
        assert cdrom.uuid == wire["uuid"] and cdrom.device_id == wire["deviceId"]
    assert get_cdrom(client, "0123456789abcdef0123456789abcdef") is None
    assert client.get_image("0123456789abcdef0123456789abcdef") is None
