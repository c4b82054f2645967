"""Authentication through ZStackClient: the shared session, re-login on ID.1001, AccessKey signing,
given sessions, logout, and that nothing secret is logged. Against the simulator over real HTTP."""

from __future__ import annotations

import hashlib
import logging
import re
import threading

import pytest

from tests.client.calls import login
from tests.support import counters
from zstack_iso.client import ZStackClient
from zstack_iso.errors import ZStackError

ADMIN = {"account_name": "admin", "account_password": "password"}


def _run_in_threads(count: int, work) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_many_operations_from_many_threads_and_clients_log_in_once(sim):
    vm_uuid = sim.vm("web-1")
    first = ZStackClient(sim.url, **ADMIN)
    second = ZStackClient(sim.url, **ADMIN)  # another client of the same process shares the session
    try:
        errors = _run_in_threads(8, lambda i: [(first if i % 2 else second).get_vm(vm_uuid) for _ in range(5)])
        first.attach_iso(vm_uuid, sim.image("rescue.iso"))
        second.detach_iso(vm_uuid, sim.image("rescue.iso"))
    finally:
        first.close()
        second.close()
    assert errors == []
    assert counters(sim)["logins"] == 1


def test_expired_session_on_reads_triggers_exactly_one_new_login_across_threads(sim):
    vm_uuid = sim.vm("web-1")
    with ZStackClient(sim.url, **ADMIN) as client:
        client.get_vm(vm_uuid)
        assert counters(sim)["logins"] == 1
        sim.expire_sessions()
        errors = _run_in_threads(8, lambda i: client.get_vm(vm_uuid))
    assert errors == []
    assert counters(sim)["logins"] == 2


def test_expired_session_on_an_attach_logs_in_once_and_attaches_once(sim):
    vm_uuid, iso = sim.vm("web-1"), sim.image("rescue.iso")
    with ZStackClient(sim.url, **ADMIN) as client:
        client.get_vm(vm_uuid)
        sim.expire_sessions()
        vm = client.attach_iso(vm_uuid, iso)
    assert vm.cdrom_with_iso(iso) is not None
    assert counters(sim)["logins"] == 2
    assert [c.get("isoUuid") for c in sim.cdroms(vm_uuid)].count(iso) == 1


def test_expired_session_during_concurrent_jobs_logs_in_once_and_each_job_runs_once(sim):
    work = [
        ("web-1", "rescue.iso"),
        ("web-1", "ubuntu-22.04-server.iso"),
        ("web-1", "virtio-win-0.1.240.iso"),
        ("web-2", "rescue.iso"),
        ("db-1", "rescue.iso"),
        ("db-1", "virtio-win-0.1.240.iso"),
    ]
    pairs = [(sim.vm(vm), sim.image(iso)) for vm, iso in work]
    with ZStackClient(sim.url, **ADMIN) as client:
        client.get_vm(pairs[0][0])
        sim.expire_sessions()
        errors = _run_in_threads(len(pairs), lambda i: client.attach_iso(*pairs[i]))
    assert errors == []
    assert counters(sim)["logins"] == 2
    for vm_uuid, iso in pairs:
        assert [c.get("isoUuid") for c in sim.cdroms(vm_uuid)].count(iso) == 1


def test_given_session_uuid_is_used_without_logging_in(sim):
    with ZStackClient(sim.url, **ADMIN, share_session=False) as owner:
        session = login(owner)
        with ZStackClient(sim.url, session_uuid=session.uuid) as client:
            assert client.get_vm(sim.vm("web-1")).name == "web-1"
    assert counters(sim)["logins"] == 1


def test_given_session_that_expired_fails_with_id_1001_and_a_hint(sim):
    with ZStackClient(sim.url, **ADMIN, share_session=False) as owner:
        session = login(owner)
    sim.expire_sessions()
    with ZStackClient(sim.url, session_uuid=session.uuid) as client:
        with pytest.raises(ZStackError) as info:
            client.get_vm(sim.vm("web-1"))
    assert info.value.code == "ID.1001"
    assert "Hint" in str(info.value) and session.uuid not in str(info.value)


def _live_sessions(simulator) -> set[str]:
    """Session UUIDs the simulated node holds (the journal masks them in logout paths)."""
    return set(list(simulator.node.sessions))


def test_close_logs_the_shared_session_out_when_its_last_client_closes(sim, simulator):
    vm_uuid = sim.vm("web-1")
    first = ZStackClient(sim.url, **ADMIN)
    second = ZStackClient(sim.url, **ADMIN)
    first.get_vm(vm_uuid)
    sessions = _live_sessions(simulator)
    assert len(sessions) == 1
    first.close()
    second.get_vm(vm_uuid)  # still logged in: another client uses the session
    assert _live_sessions(simulator) == sessions
    second.close()
    assert _live_sessions(simulator) == set() and counters(sim)["logins"] == 1
    with ZStackClient(sim.url, session_uuid=sessions.pop()) as stale:
        with pytest.raises(ZStackError) as info:
            stale.get_vm(vm_uuid)
    assert info.value.code == "ID.1001"


def test_close_without_logout_leaves_the_session_for_the_next_client(sim, simulator):
    vm_uuid = sim.vm("web-1")
    with ZStackClient(sim.url, **ADMIN) as first:
        first.get_vm(vm_uuid)
        first.close(logout=False)
    with ZStackClient(sim.url, **ADMIN) as second:
        second.get_vm(vm_uuid)
    assert counters(sim)["logins"] == 1 and _live_sessions(simulator) == set()


def test_wrong_password_fails_with_id_1000_and_never_shows_the_password(sim):
    with ZStackClient(sim.url, account_name="admin", account_password="canary-Wr0ng-pw") as client:
        with pytest.raises(ZStackError) as info:
            client.get_vm(sim.vm("web-1"))
    err = info.value
    assert err.code == "ID.1000" and err.api == "LogInByAccount"
    sha = hashlib.sha512(b"canary-Wr0ng-pw").hexdigest()
    assert "canary-Wr0ng-pw" not in str(err) and sha not in str(err) and sha not in repr(err.raw)


def test_wrong_password_hint_names_the_account_credentials_and_the_message_names_the_node(sim):
    with ZStackClient(sim.url, account_name="admin", account_password="canary-Wr0ng-pw") as client:
        with pytest.raises(ZStackError) as info:
            client.get_vm(sim.vm("web-1"))
    err = info.value
    assert err.code == "ID.1000" and err.endpoint == sim.url
    assert f"endpoint {sim.url}" in str(err)
    assert "Hint: check the account name and password" in str(err)
    assert "AccessKey" not in str(err)


def test_wrong_access_key_secret_hint_names_the_access_key_and_the_clock_not_a_password(sim):
    key_id, _ = sim.access_key
    with ZStackClient(sim.url, access_key_id=key_id, access_key_secret="canary-not-the-secret") as client:
        with pytest.raises(ZStackError) as info:
            client.get_vm(sim.vm("web-1"))
    err = info.value
    assert err.code == "ID.1000" and err.endpoint == sim.url
    assert f"endpoint {sim.url}" in str(err)
    assert "Hint: check the AccessKey id and secret" in str(err) and "clock" in str(err)
    assert "password" not in err.hint
    assert "canary-not-the-secret" not in str(err)


def test_zstack_coded_errors_of_jobs_name_the_endpoint_that_answered(sim):
    vm_uuid = sim.vm("web-2")  # one CD-ROM: a second ISO is refused by the node (§5.2 step 6)
    with ZStackClient(sim.url, **ADMIN) as client:
        client.attach_iso(vm_uuid, sim.image("ubuntu-22.04-server.iso"))
        with pytest.raises(ZStackError) as info:
            client.attach_iso(vm_uuid, sim.image("rescue.iso"))
    assert info.value.code == "SYS.1006" and info.value.endpoint == sim.url
    assert f"endpoint {sim.url}" in str(info.value)


def test_access_key_signed_requests_are_accepted_without_a_login(sim):
    key_id, secret = sim.access_key
    vm_uuid, iso = sim.vm("web-1"), sim.image("rescue.iso")
    with ZStackClient(sim.url, access_key_id=key_id, access_key_secret=secret) as client:
        assert client.get_vm(vm_uuid).name == "web-1"
        vm = client.attach_iso(vm_uuid, iso)
        assert vm.cdrom_with_iso(iso) is not None
        client.detach_iso(vm_uuid, iso)
    assert counters(sim)["logins"] == 0


def test_access_key_with_a_wrong_secret_is_refused_without_showing_the_secret(sim):
    key_id, _ = sim.access_key
    with ZStackClient(sim.url, access_key_id=key_id, access_key_secret="canary-not-the-secret") as client:
        with pytest.raises(ZStackError) as info:
            client.get_vm(sim.vm("web-1"))
    assert info.value.http_status is not None and info.value.http_status >= 400
    assert "canary-not-the-secret" not in str(info.value)


def test_nothing_secret_is_logged_even_at_debug_level(sim, simulator, caplog):
    caplog.set_level(logging.DEBUG)
    password = "password"
    vm_uuid, iso = sim.vm("web-1"), sim.image("rescue.iso")
    client = ZStackClient(sim.url, account_name="admin", account_password=password)
    client.attach_iso(vm_uuid, iso)
    sessions = _live_sessions(simulator)
    sim.expire_sessions()
    client.detach_iso(vm_uuid, iso)  # logs in again
    sessions |= _live_sessions(simulator)
    client.close()  # logs out: DELETE /accounts/sessions/<uuid>
    key_id, secret = sim.access_key
    with ZStackClient(sim.url, access_key_id=key_id, access_key_secret=secret) as signed:
        signed.get_vm(vm_uuid)

    assert len(sessions) == 2
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "zstack_iso.client" in {record.name for record in caplog.records}
    assert re.search(r"job [0-9a-f]{32}", logged)  # jobs are logged ...
    assert "/accounts/sessions/" in logged  # ... and urllib3's line for the logout ...
    for secret_text in (hashlib.sha512(password.encode()).hexdigest(), secret, *sessions):
        assert secret_text not in logged  # ... but no credential
