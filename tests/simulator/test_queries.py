"""Queries (§4.1-4.2): paths, every q= operator, limit, start, count, replyWithCount, sort, fields."""

from __future__ import annotations

import pytest

from devkit import SimCtl

ALL_VMS = ["web-1", "web-2", "db-1", "legacy-1", "old-1"]


def names(sim: SimCtl, path: str, *conditions: str, **params) -> list[str]:
    status, body = sim.zstack("GET", path, params={"q": list(conditions), **params})
    assert status == 200, body
    return [i["name"] for i in body["inventories"]]


def test_query_all_vms_returns_inventories_and_schema(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", "vm-instances")
    assert status == 200
    # JsonSchemaBuilder.java:102-155 @ 5a29293: the reverse of a post-order walk, so the last VM comes first
    assert list(body["schema"])[0] == "inventories[4]"
    assert body["schema"]["inventories[0]"] == "org.zstack.header.vm.VmInstanceInventory"
    assert [v["name"] for v in body["inventories"]] == ALL_VMS
    assert all("vmCdRoms" in v for v in body["inventories"])


def test_query_by_uuid_path_is_still_a_list(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", f"vm-instances/{sim.vm('db-1')}")
    assert status == 200 and [v["name"] for v in body["inventories"]] == ["db-1"]


def test_query_of_unknown_uuid_is_an_empty_list_not_404(sim: SimCtl) -> None:
    assert sim.zstack("GET", f"vm-instances/{'0' * 32}") == (200, {"inventories": [], "schema": {}})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("name=web-1", ["web-1"]),
        ("name!=web-1", ["web-2", "db-1", "legacy-1", "old-1"]),
        ("name?=web-1,db-1", ["web-1", "db-1"]),
        ("name!?=web-1,db-1", ["web-2", "legacy-1", "old-1"]),
        ("name~=web%", ["web-1", "web-2"]),
        ("name~=web-_", ["web-1", "web-2"]),
        ("name!~=web%", ["db-1", "legacy-1", "old-1"]),
        ("state=Running", ["web-1", "web-2", "legacy-1"]),
        ("hostUuid is null", ["db-1", "old-1"]),
        ("hostUuid not null", ["web-1", "web-2", "legacy-1"]),
        ("memorySize>=2147483648", ALL_VMS),
        ("memorySize>2147483648", []),
        ("cpuNum<3", ALL_VMS),
        ("cpuNum<=1", []),
    ],
)
def test_vm_query_operators(sim: SimCtl, condition: str, expected: list[str]) -> None:
    assert names(sim, "vm-instances", condition) == expected


def test_conditions_are_anded(sim: SimCtl) -> None:
    assert names(sim, "vm-instances", "state=Running", "name~=web%") == ["web-1", "web-2"]


def test_value_is_not_trimmed_but_field_is(sim: SimCtl) -> None:
    assert names(sim, "vm-instances", "name= web-1") == []
    assert names(sim, "vm-instances", " name =web-1") == ["web-1"]


def test_nested_vm_cdrom_condition_finds_vm_by_attached_iso(sim: SimCtl) -> None:
    iso = sim.image("rescue.iso")
    sim.zstack("POST", f"vm-instances/{sim.vm('web-2')}/iso/{iso}")
    assert names(sim, "vm-instances", f"vmCdRoms.isoUuid={iso}") == ["web-2"]


def test_cdrom_query_by_vm_sorted_by_device_id_descending(sim: SimCtl) -> None:
    vm = sim.vm("web-1")
    status, body = sim.zstack("GET", "vm-instances/cdroms", params={"q": f"vmInstanceUuid={vm}", "sort": "-deviceId"})
    assert status == 200 and [c["deviceId"] for c in body["inventories"]] == [2, 1, 0]


def test_cdrom_query_is_not_mistaken_for_vm_uuid(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", "vm-instances/cdroms", params={"q": "isoUuid is null"})
    assert status == 200 and len(body["inventories"]) == 7  # 3 + 1 + 2 + 0 + 1


def test_cdrom_by_uuid(sim: SimCtl) -> None:
    cd = sim.cdroms(sim.vm("web-2"))[0]
    assert sim.zstack("GET", f"vm-instances/cdroms/{cd['uuid']}")[1]["inventories"] == [cd]


def test_iso_images_usable_for_attach(sim: SimCtl) -> None:
    got = names(sim, "images", "mediaType=ISO", "state=Enabled", "status=Ready")
    assert got == ["ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso", "rescue.iso"]


def test_image_boolean_and_integer_fields(sim: SimCtl) -> None:
    assert "centos-7-root" not in names(sim, "images", "system=true")
    assert names(sim, "images", "size>10000000000") == ["centos-7-root"]


def test_limit_and_start(sim: SimCtl) -> None:
    assert names(sim, "vm-instances", limit=2) == ["web-1", "web-2"]
    assert names(sim, "vm-instances", limit=2, start=2) == ["db-1", "legacy-1"]
    assert names(sim, "vm-instances", start=4) == ["old-1"]


def test_sort_ascending_and_descending(sim: SimCtl) -> None:
    assert names(sim, "vm-instances", sort="+name") == sorted(ALL_VMS)
    assert names(sim, "vm-instances", sort="name") == sorted(ALL_VMS)
    assert names(sim, "vm-instances", sort="-name") == sorted(ALL_VMS, reverse=True)


def test_count_returns_only_total(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", "vm-instances", params={"q": "state=Running", "count": "true"})
    assert status == 200 and body == {"total": 3, "schema": {}}


def test_reply_with_count_adds_total_next_to_a_limited_page(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", "vm-instances", params={"replyWithCount": "true", "limit": 1})
    assert body["total"] == 5 and len(body["inventories"]) == 1


def test_fields_selects_top_level_fields_and_only_the_first_fields_param_counts(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", "vm-instances", params=[("fields", "uuid,name"), ("fields", "state")])
    assert status == 200
    assert all(set(v) == {"uuid", "name"} for v in body["inventories"])


def test_condition_without_operator_is_plain_400(sim: SimCtl) -> None:
    status, text = sim.zstack("GET", "vm-instances", params={"q": "name"})
    assert status == 400
    assert text.startswith(
        "Invalid query parameter. The 'name' in the parameter[q] doesn't contain any query operator."
    )


def test_unknown_field_is_503_sys1000(sim: SimCtl) -> None:
    status, body = sim.zstack("GET", "vm-instances", params={"q": "colour=red"})
    assert status == 503 and body["error"]["code"] == "SYS.1000"


def test_non_integer_limit_is_plain_400(sim: SimCtl) -> None:
    status, text = sim.zstack("GET", "vm-instances", params={"limit": "ten"})
    assert status == 400 and "limit" in text


# ---- handleQueryApi's own parameter parsing (RestServer.java:1074-1197 @ 5a29293)


def query(sim: SimCtl, path: str = "vm-instances", params=None) -> tuple[int, object]:
    return sim.zstack("GET", path, params=params)


@pytest.mark.parametrize(("value", "expected"), [("TRUE", True), (" true ", True), ("yes", False), ("1", False)])
def test_count_and_reply_with_count_parse_as_java_boolean(sim: SimCtl, value: str, expected: bool) -> None:
    # RestServer.java:1116-1121 @ 5a29293: Boolean.parseBoolean of the trimmed value; never an error
    status, body = query(sim, params={"count": value})
    assert status == 200 and (body == {"total": 5, "schema": {}}) is expected
    status, body = query(sim, params={"replyWithCount": value, "limit": 1})
    assert status == 200 and ("total" in body) is expected and len(body["inventories"]) == 1


@pytest.mark.parametrize(("value", "count"), [("+2", 2), (" 3 ", 3), ("0", 0), ("١", 1)])
def test_limit_parses_as_java_integer_value_of(sim: SimCtl, value: str, count: int) -> None:
    # RestServer.java:1104-1109 @ 5a29293: Integer.valueOf of the trimmed value (sign, Unicode digits)
    status, body = query(sim, params={"limit": value, "replyWithCount": "true"})
    assert status == 200 and len(body["inventories"]) == count and body["total"] == 5


@pytest.mark.parametrize("value", ["5_0", "2147483648", "", "1e3", "0x10"])
def test_limit_that_java_does_not_parse_is_plain_400(sim: SimCtl, value: str) -> None:
    assert query(sim, params={"limit": value}) == (400, "Invalid query parameter. 'limit' must be an integer")


def test_negative_limit_is_503_sys1000_from_the_query_layer(sim: SimCtl) -> None:
    # RestServer.java passes it on; QueryVisitor.java:186-193 gives it to JPA setMaxResults, which refuses it;
    # QueryFacadeImpl.java:378-379 wraps it; @MessageSafe answers SYS.1000 (wording: Hibernate, UNCONFIRMED for 5.3)
    status, body = query(sim, params={"limit": "-5", "start": "-1"})  # both negative: the limit error wins
    assert status == 503
    assert body["error"]["code"] == "SYS.1000"
    assert body["error"]["details"] == "java.lang.IllegalArgumentException: max-results cannot be negative"


def test_negative_start_is_503_sys1000(sim: SimCtl) -> None:
    status, body = query(sim, params={"start": "-1", "count": "true"})
    assert status == 503
    assert body["error"]["details"] == "java.lang.IllegalArgumentException: first-result value cannot be negative : -1"


def test_query_by_uuid_path_ignores_every_query_parameter(sim: SimCtl) -> None:
    # RestServer.java:1084-1097 @ 5a29293: GET .../{uuid} is uuid=<uuid>, sent at once
    params = {"limit": "abc", "q": "name=nothing", "count": "true", "fields": "uuid", "start": "-1"}
    status, body = query(sim, f"vm-instances/{sim.vm('db-1')}", params=params)
    assert status == 200 and [v["name"] for v in body["inventories"]] == ["db-1"]
    assert "state" in body["inventories"][0] and "total" not in body


def test_empty_parameter_name_is_read_as_q(sim: SimCtl) -> None:
    # RestServer.java:1136 @ 5a29293: `"q".startsWith(varname)` holds for an empty name too
    assert names(sim, "vm-instances", **{"": "name=web-2"}) == ["web-2"]


def test_condition_is_split_once_by_whole_separator(sim: SimCtl) -> None:
    # RestServer.java:1157-1169 @ 5a29293: StringUtils.splitByWholeSeparator(cond, op, 2) treats adjacent
    # separators as one, so "name==web-1" is name = "web-1", and "name=" is name = "" (a trailing empty token)
    assert names(sim, "vm-instances", "name==web-1") == ["web-1"]
    assert names(sim, "vm-instances", "name=") == []


def test_condition_without_a_field_is_plain_400_naming_the_query_op(sim: SimCtl) -> None:
    assert query(sim, params={"q": "=web-1"}) == (
        400,
        "Invalid query parameter. The '=web-1' in parameter[q] is not a key-value pair split by =",
    )
    assert query(sim, params={"q": "?=a,b"}) == (
        400,
        "Invalid query parameter. The '?=a,b' in parameter[q] is not a key-value pair split by in",
    )


def test_condition_without_operator_lists_the_operators_in_double_brackets(sim: SimCtl) -> None:
    # RestServer.java:1150-1154 @ 5a29293: asList(QUERY_OP_MAPPING.keySet()) is a list of one set
    assert query(sim, params={"q": "name"}) == (
        400,
        "Invalid query parameter. The 'name' in the parameter[q] doesn't contain any query operator. Valid query "
        "operators are [[!=, >=, <=, !?=, !~=, ~=, ?=, =, >, <, is null, not null]]",
    )
