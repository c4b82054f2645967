"""Models, errors and client configuration, checked on the spec's JSON samples (no server needed)."""

from __future__ import annotations

import re
import warnings
from datetime import datetime, timedelta, timezone

import pytest

from zstack_iso.client import PollPolicy, ZStackClient, ZStackSettings, access_key_signature, http_date
from zstack_iso.errors import ZStackError
from zstack_iso.models import (
    GONE_VM_STATES,
    ISO_OPERABLE_VM_STATES,
    TRANSITIONAL_VM_STATES,
    ErrorCode,
    Image,
    ImageMediaType,
    Session,
    VmCdRom,
    VmInstance,
    VmState,
    parse_zstack_date,
)

# §5.1 example as published ([DOC] _0054): numbers as doubles, the doc generator's artifact (§9).
DOC_VM = {
    "uuid": "7105b03e09794680b7ba1027f812c987",
    "name": "Test-VM",
    "description": "web server VM",
    "zoneUuid": "f4c0b6d1a1d94bd7a0e7d7f6f5b5e4a1",
    "platform": "Linux",
    "type": "UserVm",
    "hypervisorType": "KVM",
    "memorySize": 8.589934592e9,
    "cpuNum": 1.0,
    "allocatorStrategy": "LastHostPreferredAllocatorStrategy",
    "createDate": "May 11, 2017 1:23:01 PM",
    "lastOpDate": "May 11, 2017 1:23:01 PM",
    "state": "Running",
    "vmNics": [{"uuid": "n1", "ip": "192.168.1.10"}],
    "allVolumes": [{"uuid": "v1", "type": "Root"}],
    "vmCdRoms": [
        {
            "uuid": "cd2",
            "vmInstanceUuid": "7105b03e09794680b7ba1027f812c987",
            "deviceId": 2.0,
            "name": "vm-7105-cdRom-2",
            "createDate": "Nov 14, 2017 10:20:57 PM",
        },
        {
            "uuid": "cd0",
            "vmInstanceUuid": "7105b03e09794680b7ba1027f812c987",
            "deviceId": 0.0,
            "isoUuid": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "isoInstallPath": "/zstack_bs/iso.iso",
            "name": "vm-7105-cdRom",
            "protocol": "file",
        },
        {"uuid": "cd1", "vmInstanceUuid": "7105b03e09794680b7ba1027f812c987", "deviceId": 1},
    ],
    "someFutureField": {"x": 1},
}


def test_vm_inventory_from_docs_reads_doubles_as_integers_and_sorts_cdroms_by_device_id():
    vm = VmInstance.model_validate(DOC_VM)
    assert vm.memory_size == 8589934592 and isinstance(vm.memory_size, int)
    assert vm.cpu_num == 1
    assert [c.uuid for c in vm.cdroms] == ["cd0", "cd1", "cd2"]
    assert [c.device_id for c in vm.cdroms] == [0, 1, 2]
    assert vm.attached_iso_uuids == ["a1b2c3d4e5f60718293a4b5c6d7e8f90"]
    assert vm.cdrom_with_iso("A1B2C3D4E5F60718293A4B5C6D7E8F90").uuid == "cd0"
    assert [c.uuid for c in vm.empty_cdroms] == ["cd1", "cd2"]
    assert vm.cdroms[2].create_date == datetime(2017, 11, 14, 22, 20, 57)
    assert vm.create_date == datetime(2017, 5, 11, 13, 23, 1)


def test_vm_inventory_keeps_unknown_fields_instead_of_failing():
    vm = VmInstance.model_validate(DOC_VM)
    assert vm.model_extra == {"someFutureField": {"x": 1}}
    assert vm.vm_nics[0]["ip"] == "192.168.1.10"


def test_known_vm_state_compares_hashes_and_prints_as_plain_text():
    vm = VmInstance.model_validate(DOC_VM)
    assert vm.state is VmState.RUNNING
    assert vm.state == "Running" and vm.state in {"Running", "Stopped"}
    assert f"{vm.state}" == "Running" and str(vm.state) == "Running"
    assert vm.allows_iso_operations and not vm.is_transitional


def test_unknown_vm_state_is_kept_as_text_rather_than_rejected():
    vm = VmInstance.model_validate({"uuid": "u", "state": "Hibernating"})
    assert vm.state == "Hibernating"
    assert not vm.is_transitional and not vm.allows_iso_operations


def test_transitional_states_are_recognised():
    ending_by_themselves = (
        "Starting", "Stopping", "Rebooting", "Migrating", "Destroying", "Pausing", "Resuming",
        "VolumeMigrating", "VolumeRecovering", "Created",
    )  # fmt: skip
    for state in ending_by_themselves:
        vm = VmInstance.model_validate({"uuid": "u", "state": state})
        assert vm.is_transitional and not vm.allows_iso_operations and not vm.is_gone, state
    assert TRANSITIONAL_VM_STATES == frozenset(ending_by_themselves)


def test_destroyed_and_expunging_vms_are_gone_not_transitional():
    for state in ("Destroyed", "Expunging"):
        vm = VmInstance.model_validate({"uuid": "u", "state": state})
        assert vm.is_gone and not vm.is_transitional and not vm.allows_iso_operations, state


def test_vm_state_sets_are_disjoint_and_only_running_stopped_paused_allow_iso_operations():
    assert ISO_OPERABLE_VM_STATES == {"Running", "Stopped", "Paused"}
    assert GONE_VM_STATES == {"Destroyed", "Expunging"}
    assert not (TRANSITIONAL_VM_STATES & ISO_OPERABLE_VM_STATES)
    assert not (TRANSITIONAL_VM_STATES & GONE_VM_STATES) and not (GONE_VM_STATES & ISO_OPERABLE_VM_STATES)
    known = {state.value for state in VmState}
    assert TRANSITIONAL_VM_STATES | ISO_OPERABLE_VM_STATES | GONE_VM_STATES <= known
    for state in known - TRANSITIONAL_VM_STATES - ISO_OPERABLE_VM_STATES - GONE_VM_STATES:
        vm = VmInstance.model_validate({"uuid": "u", "state": state})  # Unknown, Crashed, Error, NoState
        assert not (vm.is_transitional or vm.allows_iso_operations or vm.is_gone), state


def test_vm_without_cdroms_or_with_null_cdroms_has_an_empty_list():
    assert VmInstance.model_validate({"uuid": "u"}).cdroms == []
    assert VmInstance.model_validate({"uuid": "u", "vmCdRoms": None}).cdroms == []


def test_snake_case_names_are_accepted_on_input_too():
    cdrom = VmCdRom.model_validate({"uuid": "c", "vm_instance_uuid": "v", "device_id": "1"})
    assert cdrom.vm_instance_uuid == "v" and cdrom.device_id == 1


def test_non_integral_number_for_an_integer_field_is_rejected():
    with pytest.raises(ValueError):
        VmCdRom.model_validate({"uuid": "c", "deviceId": 1.5})


def test_image_inventory_from_spec_fields():
    image = Image.model_validate(
        {
            "uuid": "i1",
            "name": "ubuntu-22.04-server.iso",
            "state": "Enabled",
            "status": "Ready",
            "size": 1.47e9,
            "actualSize": 1470000000,
            "md5Sum": "abc",
            "mediaType": "ISO",
            "format": "iso",
            "system": False,
            "virtio": True,
            "platform": "Linux",
            "backupStorageRefs": [{"id": 1.0, "imageUuid": "i1", "backupStorageUuid": "bs", "status": "Ready"}],
        }
    )
    assert image.is_iso and image.is_enabled_and_ready
    assert image.size == 1470000000 and image.md5_sum == "abc"
    assert image.backup_storage_refs[0].id == 1
    assert image.media_type is ImageMediaType.ISO


def test_image_with_unknown_media_type_or_status_is_not_an_error():
    image = Image.model_validate({"uuid": "i", "mediaType": "Kernel", "status": "Frozen", "state": "Enabled"})
    assert image.media_type == "Kernel" and not image.is_iso
    assert image.status == "Frozen" and not image.is_enabled_and_ready


def test_disabled_or_downloading_iso_is_not_usable():
    assert not Image.model_validate(
        {"uuid": "i", "mediaType": "ISO", "state": "Disabled", "status": "Ready"}
    ).is_enabled_and_ready
    assert not Image.model_validate(
        {"uuid": "i", "mediaType": "ISO", "state": "Enabled", "status": "Downloading"}
    ).is_enabled_and_ready


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("May 11, 2017 1:23:01 PM", datetime(2017, 5, 11, 13, 23, 1)),
        ("Nov 14, 2017 10:20:57 PM", datetime(2017, 11, 14, 22, 20, 57)),
        ("Jan 1, 2017 12:05:00 AM", datetime(2017, 1, 1, 0, 5, 0)),
        ("Jan 1, 2017 12:05:00 PM", datetime(2017, 1, 1, 12, 5, 0)),
        ("Jan 1, 2017 9:31:06\u202fAM", datetime(2017, 1, 1, 9, 31, 6)),
        ("2024-10-15T10:00:00", datetime(2024, 10, 15, 10, 0, 0)),
        ("not a date", None),
        ("", None),
        (None, None),
    ],
)
def test_zstack_dates_are_parsed_leniently(text, expected):
    assert parse_zstack_date(text) == expected


def test_session_uuid_never_appears_in_repr():
    session = Session.model_validate(
        {
            "uuid": "00d038b699b74e76a01705918d48d939",
            "accountUuid": "36c27e8ff05c4780bf6d2fa65700f22e",
            "userUuid": "36c27e8ff05c4780bf6d2fa65700f22e",
            "expiredDate": "Jan 1, 2017 11:31:06 AM",
            "createDate": "Jan 1, 2017 9:31:06 AM",
        }
    )
    assert session.uuid == "00d038b699b74e76a01705918d48d939"
    assert "00d038b699b74e76a01705918d48d939" not in repr(session)
    assert session.expired_date == datetime(2017, 1, 1, 11, 31, 6)


ATTACH_STATE_ERROR = {
    "code": "SYS.1006",
    "description": "An operation failed",
    "details": "current vm instance state[Starting] doesn't allow to proceed message"
    "[org.zstack.header.vm.AttachIsoToVmInstanceMsg], allowed states are [Running, Stopped, Paused]",
    "cause": {
        "code": "VM.1010",
        "description": "VM is not in state that allows required operation",
        "details": "current vm instance state[Starting] doesn't allow to proceed",
    },
    "cost": "1ms",
}


def test_error_code_model_reads_the_nested_cause():
    error = ErrorCode.model_validate(ATTACH_STATE_ERROR)
    assert error.code == "SYS.1006" and error.cause.code == "VM.1010" and error.cost == "1ms"


def test_zstack_error_message_names_code_details_cause_api_and_job():
    err = ZStackError.from_error_body(
        ATTACH_STATE_ERROR,
        api="AttachIsoToVmInstance",
        request="POST /zstack/v1/vm-instances/v/iso/i",
        http_status=503,
        job_uuid="0123456789abcdef0123456789abcdef",
    )
    text = str(err)
    assert err.code == "SYS.1006" and err.cause.code == "VM.1010"
    assert err.codes == ("SYS.1006", "VM.1010") and err.has_code("VM.1010")
    for part in (
        "SYS.1006",
        "An operation failed",
        "state[Starting]",
        "caused by VM.1010",
        "AttachIsoToVmInstance",
        "POST /zstack/v1/vm-instances/v/iso/i",
        "job 0123456789abcdef0123456789abcdef",
        "HTTP 503",
    ):
        assert part in text, part


def test_client_side_error_has_a_description_and_survives_pickling():
    import pickle

    err = ZStackError("CLIENT.TIMEOUT", details="job x did not finish", job_uuid="x", endpoint="http://h:1")
    again = pickle.loads(pickle.dumps(err))
    assert again.code == "CLIENT.TIMEOUT" and again.job_uuid == "x" and str(again) == str(err)
    assert err.description and err.is_client_side


def test_adaptive_polling_starts_early_and_backs_off_to_about_a_second():
    policy = PollPolicy()
    assert policy.next_delay(0.0) <= 0.05
    assert policy.next_delay(0.3) <= 0.05
    assert policy.next_delay(1.0) <= 0.1  # within 10 % of a 1 s job
    assert policy.next_delay(600.0) == 1.0
    delays = [policy.next_delay(t / 10) for t in range(0, 200)]
    assert delays == sorted(delays)


def test_fixed_polling_waits_the_same_interval_every_time():
    policy = PollPolicy.fixed(2.0)
    assert {policy.next_delay(t) for t in (0.0, 0.5, 10.0, 1000.0)} == {2.0}


def test_only_a_fixed_poll_interval_never_learns_job_durations():
    assert PollPolicy().learn and not PollPolicy.fixed(1.0).learn
    stack = {"endpoint": "http://h:1", "accountName": "admin", "accountPassword": "password", "pollInterval": "2"}
    from_stack = ZStackSettings.load(stack.get, environ={})
    assert from_stack.poll_policy == PollPolicy.fixed(2.0)
    with pytest.raises(ZStackError) as info:
        ZStackClient("http://h:1", session_uuid="s" * 32, poll_interval=PollPolicy(learn="yes"))  # type: ignore[arg-type]
    assert info.value.code == "CLIENT.CONFIG" and "poll_interval must be" in str(info.value)


def test_access_key_date_header_uses_the_java_pattern():
    date = http_date(datetime(2024, 10, 15, 10, 0, 0, tzinfo=timezone.utc))
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [A-Z]{2,5}", date), date
    if date.endswith("GMT"):
        assert date == "Tue, 15 Oct 2024 10:00:00 GMT"


def test_access_key_signature_matches_an_openssl_hmac_sha1():
    # printf 'GET\nTue, 15 Oct 2024 10:00:00 GMT\n/v1/vm-instances' | openssl dgst -sha1 -hmac secret -binary | base64
    signature = access_key_signature("secret", "get", "Tue, 15 Oct 2024 10:00:00 GMT", "/v1/vm-instances")
    assert signature == "D+lOAmMZWHoYatlfhtq3qk/bFr4="


@pytest.mark.parametrize(
    ("endpoint", "shown", "api_url"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080/zstack/v1"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080", "http://127.0.0.1:8080/zstack/v1"),
        ("https://mn.example.com/zstack", "https://mn.example.com/zstack", "https://mn.example.com/zstack/v1"),
        ("http://mn:8080/zstack/v1/", "http://mn:8080/zstack", "http://mn:8080/zstack/v1"),
        ("https://gw.example.com/cloud", "https://gw.example.com/cloud", "https://gw.example.com/cloud/v1"),
    ],
)
def test_endpoint_gets_the_default_context_path_and_v1(endpoint, shown, api_url):
    client = ZStackClient(endpoint, session_uuid="s" * 32)
    assert client.endpoint == shown and client.api_url == api_url
    client.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"account_name": "admin"},
        {"access_key_secret": "only-secret"},
        {"account_name": "admin", "account_password": "pw", "access_key_id": "id", "access_key_secret": "s"},
        {"account_name": "admin", "account_password": "pw", "session_uuid": "s" * 32},
    ],
)
def test_missing_incomplete_or_conflicting_credentials_are_a_config_error(kwargs):
    with pytest.raises(ZStackError) as info:
        ZStackClient("http://127.0.0.1:8080", **kwargs)
    assert info.value.code == "CLIENT.CONFIG"
    assert "pw" not in str(info.value) and "only-secret" not in str(info.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("setting", ["job_timeout", "connect_timeout", "read_timeout", "poll_interval"])
def test_a_timeout_or_poll_interval_of_nan_or_inf_is_refused_before_anything_is_sent(sim, setting, value):
    sim.clear_journal()
    with pytest.raises(ZStackError) as info:
        ZStackClient(sim.url, account_name="admin", account_password="password", **{setting: value})
    assert info.value.code == "CLIENT.CONFIG"
    assert f"{setting} must be" in str(info.value) and repr(value) in str(info.value)
    assert sim.journal()["requests"] == []


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_settle_timeout_or_poll_policy_of_nan_or_inf_is_refused(sim, value):
    with pytest.raises(ZStackError) as info:
        ZStackClient(sim.url, session_uuid="s" * 32, settle_timeout=value)
    assert info.value.code == "CLIENT.CONFIG" and "settle_timeout must be" in str(info.value)
    with pytest.raises(ZStackError) as info:
        ZStackClient(sim.url, session_uuid="s" * 32, poll_interval=PollPolicy(floor=0.01, ratio=0.0, cap=value))
    assert info.value.code == "CLIENT.CONFIG" and "poll_interval must be" in str(info.value)


def test_endpoint_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(ZStackError) as info:
        ZStackClient("http://admin:hunter2@127.0.0.1:8080", session_uuid="s" * 32)
    assert info.value.code == "CLIENT.CONFIG" and "hunter2" not in str(info.value)


def test_endpoint_without_scheme_is_a_config_error():
    with pytest.raises(ZStackError) as info:
        ZStackClient("127.0.0.1:8080", session_uuid="s" * 32)
    assert info.value.code == "CLIENT.CONFIG" and "http://127.0.0.1:8080" in str(info.value)


def test_tls_verification_off_warns_and_a_missing_ca_bundle_is_refused(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = ZStackClient("https://127.0.0.1:8443", session_uuid="s" * 32, verify=False)
    assert any("verification is disabled" in str(w.message) for w in caught)
    assert client.verify is False
    client.close()
    with pytest.raises(ZStackError) as info:
        ZStackClient("https://127.0.0.1:8443", session_uuid="s" * 32, verify=str(tmp_path / "none.pem"))
    assert info.value.code == "CLIENT.CONFIG"


def test_client_repr_shows_no_secret():
    client = ZStackClient("http://127.0.0.1:8080", account_name="admin", account_password="canary-pw-123")
    assert "canary-pw-123" not in repr(client) and "admin" in repr(client)
    assert "canary-pw-123" not in str(vars(client))
    client.close()


def test_default_tls_verification_is_on():
    client = ZStackClient("https://127.0.0.1:8443", session_uuid="s" * 32)
    assert client.verify is True
    client.close()


def test_access_key_date_uses_english_names_in_any_zone():
    date = http_date(datetime(2024, 10, 15, 10, 0, 0, tzinfo=timezone(timedelta(hours=8))))
    assert date[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
