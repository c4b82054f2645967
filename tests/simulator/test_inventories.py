"""Inventories as the node writes them (§14): Java field order, internalId, nested inventories, and the `schema`
map JsonSchemaBuilder adds to replies. Each test cites the ZStack source it follows ([Z] @ 5a29293)."""

from __future__ import annotations

import hashlib
from typing import Any

import requests

from devkit import SimCtl

RESCUE = "rescue.iso"
VM = "org.zstack.header.vm.VmInstanceInventory"
NIC = "org.zstack.header.vm.VmNicInventory"
USED_IP = "org.zstack.header.network.l3.UsedIpInventory"
VOLUME = "org.zstack.header.volume.VolumeInventory"
CDROM = "org.zstack.header.vm.cdrom.VmCdRomInventory"
IMAGE = "org.zstack.header.image.ImageInventory"
BS_REF = "org.zstack.header.image.ImageBackupStorageRefInventory"
SESSION = "org.zstack.header.identity.SessionInventory"

# header/src/main/java/org/zstack/header/vm/VmInstanceInventory.java:153-273
VM_JAVA_ORDER = [
    "uuid", "name", "description", "zoneUuid", "clusterUuid", "imageUuid", "hostUuid", "lastHostUuid",
    "instanceOfferingUuid", "rootVolumeUuid", "platform", "architecture", "defaultL3NetworkUuid", "type",
    "hypervisorType", "memorySize", "reservedMemorySize", "cpuNum", "cpuSpeed", "allocatorStrategy", "createDate",
    "lastOpDate", "state", "internalId", "vmNics", "allVolumes", "vmCdRoms", "guestOsType",
]  # fmt: skip
# header/src/main/java/org/zstack/header/vm/VmNicInventory.java:28-49
NIC_JAVA_ORDER = [
    "uuid", "vmInstanceUuid", "usedIpUuid", "l3NetworkUuid", "ip", "mac", "hypervisorType", "netmask", "gateway",
    "metaData", "ipVersion", "driverType", "usedIps", "internalName", "deviceId", "type", "state", "createDate",
    "lastOpDate",
]  # fmt: skip
# header/src/main/java/org/zstack/header/volume/VolumeInventory.java:65-157
VOLUME_JAVA_ORDER = [
    "uuid", "name", "description", "primaryStorageUuid", "vmInstanceUuid", "diskOfferingUuid", "rootImageUuid",
    "installPath", "type", "format", "size", "actualSize", "deviceId", "state", "status", "createDate", "lastOpDate",
    "isShareable", "volumeQos", "lastDetachDate", "lastVmInstanceUuid", "lastAttachDate", "protocol",
]  # fmt: skip


def in_java_order(record: dict[str, Any], order: list[str]) -> bool:
    return list(record) == [name for name in order if name in record]


def resolve(body: dict[str, Any], path: str) -> Any:
    """The value at a JsonSchemaBuilder path such as `inventories[0].vmNics[0].usedIps[0]`."""
    value: Any = body
    for part in path.split("."):
        name, _, index = part.partition("[")
        value = value[name]
        if index:
            value = value[int(index[:-1])]
    return value


def attach_result(sim: SimCtl, **headers: str) -> tuple[int, dict]:
    r = sim.submit("POST", f"vm-instances/{sim.vm('web-1')}/iso/{sim.image(RESCUE)}")
    sim.wait(r.json()["location"])
    p = requests.get(r.json()["location"], headers=headers, timeout=5)
    return p.status_code, p.json()


# ---- field order and internalId (point 5)


def test_vm_inventory_fields_follow_the_java_declaration_order(sim: SimCtl) -> None:
    _, body = attach_result(sim)
    vm = body["inventory"]
    assert in_java_order(vm, VM_JAVA_ORDER)
    assert list(vm).index("internalId") == list(vm).index("state") + 1
    assert in_java_order(vm["vmNics"][0], NIC_JAVA_ORDER)
    assert in_java_order(vm["allVolumes"][0], VOLUME_JAVA_ORDER)


def test_guest_os_type_is_the_last_vm_field() -> None:
    from tests.support import default_seed
    from zstack_iso.simulator import run_simulator

    seed = default_seed()
    seed["vmInstances"][0]["guestOsType"] = "Ubuntu 22.04"
    with run_simulator(seed=seed, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        vm = sim.zstack("GET", "vm-instances", params={"q": "name=web-1"})[1]["inventories"][0]
        assert list(vm)[-1] == "guestOsType" and vm["guestOsType"] == "Ubuntu 22.04"


def test_async_results_and_candidates_carry_internal_id_but_query_rows_do_not(sim: SimCtl) -> None:
    # VmInstanceInventory.java:258-259,294 sets internalId (@APINoSee); the HTTP Gson does not drop @APINoSee
    # (CloudBusGson.java:87-125), but QueryFacadeImpl.dropAPINoSee nulls it in query rows (L510-552)
    _, body = attach_result(sim)
    internal_id = body["inventory"]["internalId"]
    assert isinstance(internal_id, int)
    candidates = sim.zstack("GET", f"images/iso/{sim.image('ubuntu-22.04-server.iso')}/vm-candidates")[1]
    by_name = {vm["name"]: vm["internalId"] for vm in candidates["inventories"]}
    assert by_name["web-1"] == internal_id and len(set(by_name.values())) == len(by_name)
    rows = sim.zstack("GET", "vm-instances")[1]["inventories"]
    assert all("internalId" not in vm for vm in rows)
    assert all("vmNics" in vm for vm in rows)  # only the top-level @APINoSee fields go


def test_nic_has_its_used_ip_and_internal_name(sim: SimCtl) -> None:
    # VmNicInventory.java:55-73: the constructor fills usedIps (UsedIpInventory.valueOf), internalName, state;
    # VmNicVO.java:226-228: internalName is vnic<vm internalId>.<nic deviceId>
    _, body = attach_result(sim)
    vm = body["inventory"]
    nic = vm["vmNics"][0]
    assert nic["internalName"] == f"vnic{vm['internalId']}.0" and nic["state"] == "enable"
    (used_ip,) = nic["usedIps"]
    assert used_ip["uuid"] == nic["usedIpUuid"] and used_ip["vmNicUuid"] == nic["uuid"]
    assert used_ip["ip"] == nic["ip"] == "10.0.0.11"
    assert used_ip["ipInLong"] == (10 << 24) + 11 and used_ip["ipInBinary"] == [10, 0, 0, 11]


# ---- schema (point 3): JsonSchemaBuilder.java:33-155, RestServer.java:1227-1231


def test_query_schema_is_parent_first_with_children_last_index_first(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", "vm-instances", params={"q": "name=web-1"})
    assert status == 200
    assert list(body["schema"].items()) == [
        ("inventories[0]", VM),
        ("inventories[0].vmCdRoms[2]", CDROM),
        ("inventories[0].vmCdRoms[1]", CDROM),
        ("inventories[0].vmCdRoms[0]", CDROM),
        ("inventories[0].allVolumes[0]", VOLUME),
        ("inventories[0].vmNics[0]", NIC),
        ("inventories[0].vmNics[0].usedIps[0]", USED_IP),
    ]


def test_query_schema_of_two_vms_puts_the_second_block_first(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", "vm-instances", params={"q": "name?=web-2,legacy-1", "sort": "name"})
    assert [v["name"] for v in body["inventories"]] == ["legacy-1", "web-2"]
    assert list(body["schema"]) == [
        "inventories[1]",
        "inventories[1].vmCdRoms[0]",
        "inventories[1].allVolumes[0]",
        "inventories[1].vmNics[0]",
        "inventories[1].vmNics[0].usedIps[0]",
        "inventories[0]",
        "inventories[0].allVolumes[0]",
        "inventories[0].vmNics[0]",
        "inventories[0].vmNics[0].usedIps[0]",
    ]  # fmt: skip  (legacy-1 has no CD-ROM: an empty list gives no entry)


def test_image_and_cdrom_query_schemas(sim: SimCtl) -> None:
    body = sim.zstack("GET", f"images/{sim.image(RESCUE)}")[1]
    assert body["schema"] == {"inventories[0]": IMAGE, "inventories[0].backupStorageRefs[0]": BS_REF}
    body = sim.zstack("GET", "vm-instances/cdroms", params={"q": f"vmInstanceUuid={sim.vm('db-1')}"})[1]
    assert list(body["schema"].items()) == [("inventories[1]", CDROM), ("inventories[0]", CDROM)]


def test_every_schema_path_names_an_object_of_the_reply(sim: SimCtl) -> None:
    for path in ("vm-instances", "images", "vm-instances/cdroms"):
        body = sim.zstack("GET", path)[1]
        assert body["schema"]
        assert all(isinstance(resolve(body, p), dict) for p in body["schema"])


def test_empty_query_and_count_have_an_empty_schema(sim: SimCtl) -> None:
    assert sim.zstack("GET", "vm-instances", params={"q": "name=nobody"})[1] == {"inventories": [], "schema": {}}
    assert sim.zstack("GET", "images", params={"count": "true"})[1] == {"total": 6, "schema": {}}


def test_candidate_replies_carry_a_schema_only_with_the_header(sim: SimCtl) -> None:
    # APIGetCandidate*Reply extend APIReply, not APIQueryReply: schema only with X-JSON-Schema
    path = f"vm-instances/{sim.vm('web-1')}/iso-candidates"
    assert "schema" not in sim.zstack("GET", path)[1]
    body = sim.zstack("GET", path, headers={"X-JSON-Schema": "true"})[1]
    assert body["schema"]["inventories[0]"] == IMAGE and list(body["schema"])[0] == "inventories[2]"
    body = sim.zstack("GET", f"images/iso/{sim.image(RESCUE)}/vm-candidates", headers={"X-JSON-Schema": ""})[1]
    assert body["schema"]["inventories[0]"] == VM and "inventories[0].vmNics[0].usedIps[0]" in body["schema"]


def test_login_and_other_sync_replies_carry_a_schema_only_with_the_header(sim: SimCtl) -> None:
    login = {"logInByAccount": {"accountName": "admin", "password": hashlib.sha512(b"password").hexdigest()}}
    assert "schema" not in requests.put(f"{sim.api}/accounts/login", json=login, timeout=5).json()
    r = requests.put(f"{sim.api}/accounts/login", json=login, headers={"X-JSON-Schema": "1"}, timeout=5)
    assert r.json()["schema"] == {"inventory": SESSION}
    r = requests.put(f"{sim.api}/management-nodes/actions", json={"getVersion": {}}, headers={"X-JSON-Schema": "1"})
    assert r.json()["schema"] == {} and "version" in r.json()


def test_async_result_schema_follows_the_poll_request_header(sim: SimCtl) -> None:
    # RestServer.java:705-741: handleJobQuery writes the result with the poll request's headers
    status, body = attach_result(sim)
    assert status == 200 and "schema" not in body
    status, body = attach_result(sim, **{"X-JSON-Schema": "true"})  # attached already: a 503, no schema
    assert status == 503 and "schema" not in body
    sim.zstack("DELETE", f"vm-instances/{sim.vm('web-1')}/iso", params={"isoUuid": sim.image(RESCUE)})
    status, body = attach_result(sim, **{"X-JSON-Schema": "true"})
    assert status == 200
    assert list(body["schema"].items()) == [
        ("inventory", VM),
        ("inventory.vmCdRoms[2]", CDROM),
        ("inventory.vmCdRoms[1]", CDROM),
        ("inventory.vmCdRoms[0]", CDROM),
        ("inventory.allVolumes[0]", VOLUME),
        ("inventory.vmNics[0]", NIC),
        ("inventory.vmNics[0].usedIps[0]", USED_IP),
    ]


def test_accepted_and_running_answers_never_carry_a_schema(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.3)
    r = sim.submit("POST", f"vm-instances/{sim.vm('web-1')}/iso/{sim.image(RESCUE)}", headers={"X-JSON-Schema": "1"})
    assert r.status_code == 202 and set(r.json()) == {"location", "apiTimeout"}
    running = requests.get(r.json()["location"], headers={"X-JSON-Schema": "1"}, timeout=5)
    assert running.status_code == 202 and running.json() == {}


def test_cdrom_results_and_void_results(sim: SimCtl) -> None:
    vm = sim.vm("db-1")
    body = {"params": {"name": "cd-x", "vmInstanceUuid": vm}}
    location = sim.submit("POST", "vm-instances/cdroms", json=body).json()["location"]
    sim.wait(location)
    result = requests.get(location, headers={"X-JSON-Schema": "1"}, timeout=5).json()
    assert result["schema"] == {"inventory": CDROM}
    location = sim.submit("DELETE", f"vm-instances/cdroms/{result['inventory']['uuid']}").json()["location"]
    sim.wait(location)
    assert requests.get(location, headers={"X-JSON-Schema": "1"}, timeout=5).json() == {"schema": {}}
