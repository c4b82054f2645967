"""Lost responses, expired jobs and unreachable nodes: the client never runs a job twice and never reports
a failure that did not happen. Faults come from the simulator's control API, over real HTTP."""

from __future__ import annotations

import socket
import time
import warnings

import pytest

from tests.support import counters, holders, requests_to
from zstack_iso.client import ZStackClient
from zstack_iso.errors import ZStackError

RESCUE = "rescue.iso"
# The client logs in before each test arms its faults (tests/client/conftest.py).
LOG_IN_FIRST = True


def _attach_once_through_fault(sim, client, **fault) -> None:
    """Attach rescue.iso to web-1 with `fault` armed on the submit: it must attach, once, with one job."""
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    sim.clear_journal()
    sim.fault(method="POST", pathRegex="/iso/", **fault)
    vm = client.attach_iso(vm_uuid, iso)
    assert vm.cdrom_with_iso(iso) is not None
    assert counters(sim)["jobs"] == 1
    assert len(holders(sim, vm_uuid, iso)) == 1


def test_attach_whose_answer_is_lost_after_accept_runs_once_and_succeeds(sim, client):
    _attach_once_through_fault(sim, client, action="drop_after_accept")
    assert len(requests_to(sim, "POST", "/iso/")) == 1  # answered by polling the job, not by submitting again


def test_attach_whose_connection_drops_before_accept_is_submitted_again_safely(sim, client):
    _attach_once_through_fault(sim, client, action="drop_connection")


@pytest.mark.parametrize("status", [502, 503, 504])
def test_attach_answered_by_a_gateway_error_is_resolved_through_the_job_uuid(sim, client, status):
    _attach_once_through_fault(sim, client, action="http_status", status=status)


def test_detach_whose_answer_is_lost_after_accept_succeeds(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    client.attach_iso(vm_uuid, iso)
    sim.fault(method="DELETE", pathRegex="/iso", action="drop_after_accept")
    vm = client.detach_iso(vm_uuid, iso)
    assert vm.cdrom_with_iso(iso) is None and len(holders(sim, vm_uuid, iso)) == 0


def test_detach_whose_connection_drops_is_submitted_again_safely(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    client.attach_iso(vm_uuid, iso)
    sim.clear_journal()
    sim.fault(method="DELETE", pathRegex="/iso", action="drop_connection")
    vm = client.detach_iso(vm_uuid, iso)
    assert vm.cdrom_with_iso(iso) is None and len(holders(sim, vm_uuid, iso)) == 0
    assert counters(sim)["jobs"] == 1


def test_resubmit_refused_as_a_duplicate_proves_the_first_submit_was_accepted(sim, client):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    sim.clear_journal()
    sim.fault(method="POST", pathRegex="/iso/", action="drop_after_accept")  # accepted, answer lost
    sim.fault(method="GET", pathRegex="/api-jobs/", action="http_status", status=404, body="job not found")
    vm = client.attach_iso(vm_uuid, iso)
    assert vm.cdrom_with_iso(iso) is not None
    assert counters(sim)["jobs"] == 1 and len(holders(sim, vm_uuid, iso)) == 1
    statuses = [r["status"] for r in sim.journal()["requests"] if r["method"] == "POST" and "/iso/" in r["path"]]
    assert 400 in statuses  # the second submit, with the same X-Job-UUID, was refused as a duplicate


@pytest.mark.parametrize(
    ("job", "method", "path", "attached"), [("attach", "POST", "/iso/", True), ("detach", "DELETE", "/iso", False)]
)
def test_a_job_whose_record_expired_is_settled_by_reading_the_vm(sim, client, job, method, path, attached):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    if job == "detach":
        client.attach_iso(vm_uuid, iso)
    sim.fault(method=method, pathRegex=path, action="expire_job")
    vm = client.attach_iso(vm_uuid, iso) if job == "attach" else client.detach_iso(vm_uuid, iso)
    assert (vm.cdrom_with_iso(iso) is not None) is attached and len(holders(sim, vm_uuid, iso)) == int(attached)


def test_expired_job_that_did_not_take_effect_is_reported_as_job_lost(sim, client):
    vm_uuid = sim.vm("web-2")  # one CD-ROM: a second ISO cannot go in
    client.attach_iso(vm_uuid, sim.image("ubuntu-22.04-server.iso"))
    sim.fault(method="POST", pathRegex="/iso/", action="expire_job")
    started = time.monotonic()
    with pytest.raises(ZStackError) as info:
        client.attach_iso(vm_uuid, sim.image(RESCUE))
    err = info.value
    assert err.code == "CLIENT.JOB_LOST"
    assert err.job_uuid and err.job_uuid in str(err) and vm_uuid in str(err)
    assert time.monotonic() - started < 5
    assert len(holders(sim, vm_uuid, sim.image(RESCUE))) == 0


def test_job_that_failed_after_a_lost_answer_reports_its_own_error_at_once(sim, client):
    vm_uuid = sim.vm("web-2")  # one CD-ROM
    client.attach_iso(vm_uuid, sim.image("ubuntu-22.04-server.iso"))
    sim.fault(method="POST", pathRegex="/iso/", action="drop_after_accept")
    started = time.monotonic()
    with pytest.raises(ZStackError) as info:
        client.attach_iso(vm_uuid, sim.image(RESCUE))
    assert info.value.code == "SYS.1006"  # "All ... CD-ROMs have mounted ISO", not a vague "outcome unknown"
    assert time.monotonic() - started < 1.0
    assert len(holders(sim, vm_uuid, sim.image(RESCUE))) == 0


def test_submit_delayed_past_the_read_timeout_still_runs_once(sim):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    with ZStackClient(
        sim.url, account_name="admin", account_password="password", read_timeout=0.3, job_timeout=10
    ) as client:
        client.get_vm(vm_uuid)
        sim.clear_journal()
        sim.fault(method="POST", pathRegex="/iso/", action="delay", delayMs=1000)
        vm = client.attach_iso(vm_uuid, iso)
        time.sleep(1.0)  # let the delayed request finish on the server before counting
    assert vm.cdrom_with_iso(iso) is not None
    assert counters(sim)["jobs"] == 1 and len(holders(sim, vm_uuid, iso)) == 1


@pytest.mark.parametrize("action", ["drop_connection", "http_status"])
def test_poll_faults_are_retried_and_the_job_result_is_read(sim, client, action):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    extra = {"status": 503} if action == "http_status" else {}
    sim.fault(method="GET", pathRegex="/api-jobs/", action=action, times=2, **extra)
    vm = client.attach_iso(vm_uuid, iso)
    assert vm.cdrom_with_iso(iso) is not None and counters(sim)["jobs"] == 1


@pytest.mark.parametrize("action", ["drop_connection", "http_status"])
def test_login_faults_are_retried(sim, action):
    extra = {"status": 502} if action == "http_status" else {}
    sim.fault(method="PUT", pathRegex="/accounts/login", action=action, **extra)
    with ZStackClient(sim.url, account_name="admin", account_password="password") as client:
        assert client.get_vm(sim.vm("web-1")).name == "web-1"


def test_unreachable_node_is_a_clear_error_naming_the_endpoint():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    with ZStackClient(endpoint, account_name="admin", account_password="password", retries=1) as client:
        with pytest.raises(ZStackError) as info:
            client.get_vm("0123456789abcdef0123456789abcdef")
    assert info.value.code == "CLIENT.UNREACHABLE"
    assert endpoint in str(info.value)


def test_tls_verification_is_on_by_default_and_refuses_a_self_signed_certificate(tls_node):
    server, _, _ = tls_node
    assert server.url.startswith("https://")
    with ZStackClient(server.url, account_name="admin", account_password="password", retries=0) as client:
        with pytest.raises(ZStackError) as info:
            client.get_vm("0123456789abcdef0123456789abcdef")
    assert info.value.code == "CLIENT.TLS"
    assert server.url in str(info.value) and "CA bundle" in str(info.value)


def test_tls_with_the_ca_bundle_given_verifies_and_works(tls_node):
    server, ca_bundle, _ = tls_node
    with ZStackClient(server.url, account_name="admin", account_password="password", verify=str(ca_bundle)) as client:
        assert client.query_vms(name="web-1")[0].name == "web-1"


def test_tls_verification_turned_off_works_with_a_warning(tls_node):
    server, _, _ = tls_node
    with pytest.warns(UserWarning, match="verification is disabled"):
        client = ZStackClient(server.url, account_name="admin", account_password="password", verify=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's own InsecureRequestWarning, on every request
        with client:
            assert client.query_vms(name="web-1")[0].name == "web-1"


def test_poll_unanswered_past_the_retries_keeps_polling_and_the_attach_succeeds(sim, client, caplog):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    sim.config(jobSeconds=1.5)
    sim.clear_journal()
    # Five body-less 503s: more than one poll's worth of adapter retries (1 try + 3 retries).
    sim.fault(method="GET", pathRegex="^/zstack/v1/api-jobs/", action="http_status", status=503, times=5)
    with caplog.at_level("WARNING", logger="zstack_iso.client"):
        vm = client.attach_iso(vm_uuid, iso)
    assert vm.cdrom_with_iso(iso) is not None and len(holders(sim, vm_uuid, iso)) == 1
    assert counters(sim)["jobs"] == 1 and len(requests_to(sim, "POST", "/iso/")) == 1
    polls = [r["status"] for r in sim.journal()["requests"] if "/api-jobs/" in r["path"]]
    assert polls.count(503) == 5 and polls[-1] == 200
    assert any("poll got no answer" in r.getMessage() and "polling again" in r.getMessage() for r in caplog.records)


def test_poll_unanswered_until_the_deadline_is_a_timeout_naming_the_job_and_the_last_reason(sim):
    vm_uuid, iso = sim.vm("web-1"), sim.image(RESCUE)
    sim.config(jobSeconds=5)
    with ZStackClient(sim.url, account_name="admin", account_password="password", job_timeout=1.5, retries=0) as c:
        c.get_vm(vm_uuid)
        sim.fault(method="GET", pathRegex="^/zstack/v1/api-jobs/", action="http_status", status=503, times=1000)
        started = time.monotonic()
        with pytest.raises(ZStackError) as info:
            c.attach_iso(vm_uuid, iso)
        elapsed = time.monotonic() - started
    sim.clear_faults()
    err = info.value
    assert err.code == "CLIENT.TIMEOUT"
    assert err.job_uuid and f"job {err.job_uuid}" in str(err)
    assert "HTTP 503 without a ZStack error body" in str(err) and sim.url in str(err)
    assert 1.4 <= elapsed < 4.0
    assert counters(sim)["jobs"] == 1
