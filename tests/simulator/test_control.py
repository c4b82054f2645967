"""The control API (/_simulator): journal, config, each fault action, session expiry, state holds, reset."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from devkit import SimCtl

RESCUE = "rescue.iso"


def attach_path(sim: SimCtl, vm: str = "web-1") -> str:
    return f"vm-instances/{sim.vm(vm)}/iso/{sim.image(RESCUE)}"


def rescue_count(sim: SimCtl, vm: str = "web-1") -> int:
    return [c.get("isoUuid") for c in sim.cdroms(sim.vm(vm))].count(sim.image(RESCUE))


# ---- journal


def test_journal_records_zstack_requests_with_query_string_but_not_control_calls(sim: SimCtl) -> None:
    sim.headers()
    sim.clear_journal()
    sim.zstack("GET", "vm-instances", params={"q": "name=web-1"})
    sim.config(latencyMs=0)
    journal = sim.journal()
    assert journal["counters"] == {"requests": 1, "logins": 0, "jobs": 0}
    (entry,) = journal["requests"]
    assert entry["method"] == "GET" and entry["status"] == 200
    assert entry["path"] == "/zstack/v1/vm-instances?q=name%3Dweb-1"
    assert isinstance(entry["durationMs"], float)


def test_journal_counts_requests_logins_and_jobs_and_clears(sim: SimCtl) -> None:
    sim.clear_journal()
    status, _ = sim.zstack("POST", attach_path(sim))
    counters = sim.journal()["counters"]
    assert status == 200
    assert counters["logins"] == 1 and counters["jobs"] == 1 and counters["requests"] >= 3  # login, submit, poll
    sim.clear_journal()
    assert sim.journal() == {"requests": [], "counters": {"requests": 0, "logins": 0, "jobs": 0}}


def test_journal_hides_session_uuids_in_paths(sim: SimCtl) -> None:
    session = sim.login()
    requests.get(f"{sim.api}/accounts/sessions/{session}/valid", timeout=5)
    assert all(session not in e["path"] for e in sim.journal()["requests"])


# ---- config


def test_config_put_changes_a_subset_and_returns_the_whole_config(sim: SimCtl) -> None:
    assert sim.config(latencyMs=5) == {
        "jobSeconds": 0.02,
        "latencyMs": 5.0,
        "sessionTimeoutSeconds": 7200,
        "strictAttach": False,
    }
    assert requests.get(f"{sim.url}/_simulator/config", timeout=5).json()["latencyMs"] == 5.0


def test_config_rejects_unknown_keys_and_bad_values(sim: SimCtl) -> None:
    for body in (
        {"jobSecs": 1},
        {"jobSeconds": "fast"},
        {"latencyMs": -1},
        {"sessionTimeoutSeconds": 1.5},
        {"strictAttach": "yes"},
        {"strictAttach": 1},
    ):
        r = requests.put(f"{sim.url}/_simulator/config", json=body, timeout=5)
        assert r.status_code == 400 and "error" in r.json()


def test_latency_applies_to_zstack_requests(sim: SimCtl) -> None:
    sim.headers()
    sim.config(latencyMs=150)
    started = time.monotonic()
    sim.zstack("GET", "vm-instances")
    assert time.monotonic() - started >= 0.15


def test_job_seconds_sets_the_job_duration(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.3)
    started = time.monotonic()
    sim.zstack("POST", attach_path(sim))
    assert time.monotonic() - started >= 0.3


# ---- faults


def test_http_status_fault_answers_without_executing(sim: SimCtl) -> None:
    sim.headers()
    sim.clear_journal()
    sim.fault(method="POST", pathRegex="/iso/", action="http_status", status=502, body="Bad Gateway")
    r = sim.submit("POST", attach_path(sim))
    assert (r.status_code, r.text) == (502, "Bad Gateway")
    assert sim.journal()["counters"]["jobs"] == 0 and rescue_count(sim) == 0
    assert sim.submit("POST", attach_path(sim)).status_code == 202  # used up after one time


def test_http_status_fault_with_json_body(sim: SimCtl) -> None:
    sim.fault(pathRegex="vm-instances", action="http_status", status=503, body={"error": {"code": "SYS.1000"}})
    r = sim.submit("GET", "vm-instances")
    assert r.status_code == 503 and r.json() == {"error": {"code": "SYS.1000"}}


def _submit_unanswered(sim: SimCtl, action: str) -> str:
    """Arm `action` on the attach, submit it under a fresh X-Job-UUID and get no answer: that UUID."""
    sim.headers()
    sim.clear_journal()
    sim.fault(method="POST", pathRegex="/iso/", action=action)
    job = uuid.uuid4().hex
    with pytest.raises(requests.ConnectionError):
        sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": job})
    return job


def test_drop_connection_fault_closes_without_answer_and_executes_nothing(sim: SimCtl) -> None:
    job = _submit_unanswered(sim, "drop_connection")
    time.sleep(0.1)
    assert rescue_count(sim) == 0
    assert requests.get(f"{sim.api}/api-jobs/{job}", timeout=5).status_code == 404
    journal = sim.journal()
    assert journal["counters"]["jobs"] == 0
    assert [e["status"] for e in journal["requests"] if e["method"] == "POST"] == [0]  # 0: no answer sent
    # the same X-Job-UUID can then be submitted: nothing used it
    assert sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": job}).status_code == 202


def test_drop_after_accept_fault_runs_the_job_exactly_once(sim: SimCtl) -> None:
    job = _submit_unanswered(sim, "drop_after_accept")
    assert sim.wait(f"{sim.api}/api-jobs/{job}")[0] == 200
    assert rescue_count(sim) == 1 and sim.journal()["counters"]["jobs"] == 1
    r = sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": job})
    assert r.status_code == 400 and "Duplicate job uuid" in r.text


def test_job_error_fault_fails_the_job_with_the_given_error(sim: SimCtl) -> None:
    error = {"code": "SYS.1006", "details": "host went away", "cause": {"code": "HOST.1000", "details": "x"}}
    sim.fault(method="POST", pathRegex="/iso/", action="job_error", error=error)
    status, body = sim.zstack("POST", attach_path(sim))
    assert status == 503
    assert body["error"]["code"] == "SYS.1006" and body["error"]["cause"]["code"] == "HOST.1000"
    assert body["error"]["description"] == "An operation failed"
    assert rescue_count(sim) == 0


def test_expire_job_fault_on_submit_runs_the_job_but_polls_answer_404(sim: SimCtl) -> None:
    sim.fault(method="POST", pathRegex="/iso/", action="expire_job")
    job = uuid.uuid4().hex
    r = sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": job})
    assert r.status_code == 202
    time.sleep(0.15)
    poll = requests.get(r.json()["location"], timeout=5)
    assert (poll.status_code, poll.text) == (404, "the job has been expired")
    assert rescue_count(sim) == 1
    assert sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": job}).status_code == 400


def test_expire_job_fault_on_poll_path_answers_404_that_many_times(sim: SimCtl) -> None:
    location = sim.submit("POST", attach_path(sim)).json()["location"]
    time.sleep(0.1)
    sim.fault(method="GET", pathRegex="/api-jobs/", action="expire_job", times=2)
    assert [requests.get(location, timeout=5).status_code for _ in range(3)] == [404, 404, 200]


def test_delay_fault_delays_the_answer(sim: SimCtl) -> None:
    sim.headers()
    sim.fault(method="GET", pathRegex="vm-instances", action="delay", delayMs=300)
    started = time.monotonic()
    assert sim.submit("GET", "vm-instances").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_fault_method_filter_and_unlimited_times(sim: SimCtl) -> None:
    sim.headers()
    sim.fault(method="GET", pathRegex="vm-instances", action="http_status", status=500, times=None)
    assert sim.submit("POST", attach_path(sim)).status_code == 202
    assert [sim.submit("GET", "vm-instances").status_code for _ in range(3)] == [500, 500, 500]
    sim.clear_faults()
    assert sim.submit("GET", "vm-instances").status_code == 200


def test_fault_path_regex_sees_the_query_string(sim: SimCtl) -> None:
    sim.headers()
    iso = sim.image(RESCUE)
    sim.fault(method="DELETE", pathRegex=f"isoUuid={iso}", action="http_status", status=504)
    assert sim.submit("DELETE", f"vm-instances/{sim.vm('web-1')}/iso").status_code == 202
    assert sim.submit("DELETE", f"vm-instances/{sim.vm('web-1')}/iso", params={"isoUuid": iso}).status_code == 504


def test_faults_can_be_listed_and_removed_by_id(sim: SimCtl) -> None:
    fid = sim.fault(pathRegex="x", action="delay", delayMs=1, times=3)
    listed = requests.get(f"{sim.url}/_simulator/faults", timeout=5).json()["faults"]
    assert listed == [{"id": fid, "action": "delay", "method": None, "pathRegex": "x", "times": 3, "delayMs": 1.0}]
    assert requests.delete(f"{sim.url}/_simulator/faults/{fid}", timeout=5).status_code == 200
    assert requests.get(f"{sim.url}/_simulator/faults", timeout=5).json()["faults"] == []


@pytest.mark.parametrize(
    "spec",
    [{"action": "explode"}, {"action": "delay"}, {"action": "http_status", "status": 99},
     {"action": "delay", "delayMs": 5, "pathRegex": "("}, {"action": "job_error", "error": "oops"}],
)  # fmt: skip
def test_invalid_fault_specs_are_rejected(sim: SimCtl, spec: dict) -> None:
    r = requests.post(f"{sim.url}/_simulator/faults", json=spec, timeout=5)
    assert r.status_code == 400 and r.json()["error"]


# ---- sessions, state holds, reset


def test_sessions_expire_makes_every_session_invalid(sim: SimCtl) -> None:
    session = sim.login()
    sim.expire_sessions()
    r = requests.get(f"{sim.api}/vm-instances", headers={"Authorization": f"OAuth {session}"}, timeout=5)
    assert r.json()["error"]["code"] == "ID.1001"


def test_hold_state_shows_the_state_then_restores_the_former_one(sim: SimCtl) -> None:
    vm = sim.vm("web-2")
    sim.hold_state(vm, "Migrating", 0.3)
    assert sim.vm_inventory(vm)["state"] == "Migrating"
    time.sleep(0.5)
    assert sim.vm_inventory(vm)["state"] == "Running"


def test_hold_state_of_unknown_vm_or_state_is_rejected(sim: SimCtl) -> None:
    r = requests.put(f"{sim.url}/_simulator/vm-instances/{'0' * 32}/state", json={"state": "Starting"}, timeout=5)
    assert r.status_code == 404
    r = requests.put(f"{sim.url}/_simulator/vm-instances/{sim.vm('web-1')}/state", json={"state": "Dancing"}, timeout=5)
    assert r.status_code == 400


def test_reset_restores_inventory_config_and_clears_faults_journal_sessions(sim: SimCtl) -> None:
    sim.zstack("POST", attach_path(sim))
    sim.zstack("PUT", f"vm-instances/{sim.vm('old-1')}/actions", json={"expungeVmInstance": {}})
    session = sim.login()
    sim.config(jobSeconds=3, latencyMs=10, strictAttach=True)
    sim.fault(pathRegex=".", action="http_status", status=500, times=None)
    sim.reset()
    assert rescue_count(sim) == 0 and sim.vm("old-1")
    assert sim.config() == {"jobSeconds": 0.02, "latencyMs": 0.0, "sessionTimeoutSeconds": 7200, "strictAttach": False}
    assert sim.journal()["counters"]["requests"] == 0
    r = requests.get(f"{sim.api}/accounts/sessions/{session}/valid", timeout=5)
    assert r.json() == {"valid": False}


def test_reset_drops_jobs_in_flight_without_touching_the_fresh_inventory(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.3)
    location = sim.submit("POST", attach_path(sim)).json()["location"]
    sim.reset()
    time.sleep(0.45)
    assert rescue_count(sim) == 0
    assert requests.get(location, timeout=5).status_code == 404


def test_unknown_control_path_is_404(sim: SimCtl) -> None:
    assert requests.get(f"{sim.url}/_simulator/nothing", timeout=5).status_code == 404
