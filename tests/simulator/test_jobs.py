"""The async job protocol (§3.2-3.4) over real HTTP."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest
import requests

from devkit.simctl import ADMIN, SimCtl


def sim_password_sha512() -> str:
    return hashlib.sha512(ADMIN[1].encode()).hexdigest()


def attach_path(sim: SimCtl, vm: str = "web-1", iso: str = "rescue.iso") -> str:
    return f"vm-instances/{sim.vm(vm)}/iso/{sim.image(iso)}"


def test_async_call_answers_202_with_location_and_api_timeout(sim: SimCtl) -> None:
    r = sim.submit("POST", attach_path(sim))
    assert r.status_code == 202
    body = r.json()
    assert set(body) == {"location", "apiTimeout"}
    assert body["apiTimeout"] == 1800000
    assert body["location"].startswith(f"{sim.url}/zstack/v1/api-jobs/")


def test_location_uses_the_host_the_client_used(sim: SimCtl) -> None:
    r = sim.submit("POST", attach_path(sim), headers={"Host": "mn.example.test:8080"})
    assert r.json()["location"].startswith("http://mn.example.test:8080/zstack/v1/api-jobs/")


def test_poll_answers_202_empty_while_running_then_200_with_result(sim: SimCtl) -> None:
    sim.config(jobSeconds=0.3)
    location = sim.submit("POST", attach_path(sim)).json()["location"]
    running = requests.get(location, timeout=5)
    assert running.status_code == 202 and running.json() == {}
    time.sleep(0.4)
    done = requests.get(location, timeout=5)
    assert done.status_code == 200 and done.json()["inventory"]["name"] == "web-1"
    assert requests.get(location, timeout=5).status_code == 200  # results stay readable


def test_poll_needs_no_authorization(sim: SimCtl) -> None:
    location = sim.submit("POST", attach_path(sim)).json()["location"]
    time.sleep(0.1)
    assert requests.get(location, timeout=5).status_code == 200


def test_failed_job_polls_503_with_error(sim: SimCtl) -> None:
    location = sim.submit("POST", attach_path(sim, iso="centos-7-root")).json()["location"]
    status, body = sim.wait(location)
    assert status == 503 and body["error"]["code"] == "SYS.1007"


def test_poll_of_unknown_job_is_plain_404(sim: SimCtl) -> None:
    r = requests.get(f"{sim.api}/api-jobs/{uuid.uuid4().hex}", timeout=5)
    assert r.status_code == 404 and r.text == "the job has been expired"


def test_poll_with_other_method_is_405(sim: SimCtl) -> None:
    r = requests.delete(f"{sim.api}/api-jobs/{uuid.uuid4().hex}", timeout=5)
    assert r.status_code == 405 and r.text == "only GET method is allowed for querying job status"


def test_x_job_uuid_becomes_the_job_uuid(sim: SimCtl) -> None:
    job = uuid.uuid4().hex
    r = sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": job})
    assert r.json()["location"].endswith(f"/api-jobs/{job}")
    assert sim.wait(r.json()["location"])[0] == 200


def test_reused_x_job_uuid_is_400_and_runs_nothing(sim: SimCtl) -> None:
    job = uuid.uuid4().hex
    sim.wait(sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": job}).json()["location"])
    sim.clear_journal()
    r = sim.submit("DELETE", f"vm-instances/{sim.vm('web-1')}/iso", headers={"X-Job-UUID": job})
    assert r.status_code == 400 and r.text == f"Duplicate job uuid[{job}]"
    assert sim.journal()["counters"]["jobs"] == 0
    assert sim.cdroms(sim.vm("web-1"))[0]["isoUuid"] == sim.image("rescue.iso")


def test_malformed_x_job_uuid_is_400(sim: SimCtl) -> None:
    r = sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": str(uuid.uuid4())})
    assert r.status_code == 400
    assert r.text == "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped"


def test_x_api_timeout_sets_api_timeout_and_times_the_job_out(sim: SimCtl) -> None:
    sim.config(jobSeconds=1.5)
    r = sim.submit("POST", attach_path(sim), headers={"X-API-Timeout": "1"})
    assert r.json()["apiTimeout"] == 1000
    status, body = sim.wait(r.json()["location"])
    assert status == 503 and body["error"]["code"] == "SYS.1001"
    # the work already queued on the VM still completes, as on a real node
    time.sleep(0.7)
    assert sim.cdroms(sim.vm("web-1"))[0]["isoUuid"] == sim.image("rescue.iso")


def test_x_json_schema_adds_schema_to_results(sim: SimCtl) -> None:
    location = sim.submit("POST", attach_path(sim)).json()["location"]
    time.sleep(0.1)
    body = requests.get(location, headers={"X-JSON-Schema": "true"}, timeout=5).json()
    assert "schema" in body and "inventory" in body


def test_journal_counts_accepted_jobs(sim: SimCtl) -> None:
    sim.headers()
    sim.clear_journal()
    for _ in range(3):
        sim.zstack("DELETE", f"vm-instances/{sim.vm('web-1')}/iso")
    assert sim.journal()["counters"]["jobs"] == 3


# ---- X-Job-UUID and X-API-Timeout as RestServer.handleApi reads them (RestServer.java:906-988 @ 5a29293)


def test_x_job_uuid_is_checked_for_its_length_only(sim: SimCtl) -> None:
    # RestServer.java:965-967 @ 5a29293: `jobUuid.length() != 32`, no hex check
    job = "z" * 32
    r = sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": job})
    assert r.status_code == 202 and r.json()["location"].endswith(f"/api-jobs/{job}")
    assert sim.wait(r.json()["location"])[0] == 200


@pytest.mark.parametrize("value", ["0123456789abcdef", "0" * 33, ""])
def test_x_job_uuid_of_another_length_is_400_on_a_non_query_get_too(sim: SimCtl, value: str) -> None:
    # RestServer.java:963-967 @ 5a29293: every non-query API, GetCandidateIsoForAttachingVm included
    r = sim.submit("GET", f"vm-instances/{sim.vm('web-1')}/iso-candidates", headers={"X-Job-UUID": value})
    assert (r.status_code, r.text) == (400, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped")


def test_queries_ignore_x_job_uuid_and_x_api_timeout(sim: SimCtl) -> None:
    # RestServer.java:906-909 @ 5a29293: the query hand-off comes before both header checks
    r = sim.submit("GET", "vm-instances", headers={"X-Job-UUID": "not-a-uuid", "X-API-Timeout": "soon"})
    assert r.status_code == 200 and len(r.json()["inventories"]) == 5


def _used_job_uuid(sim: SimCtl) -> str:
    job = uuid.uuid4().hex
    r = sim.submit("DELETE", f"vm-instances/{sim.vm('web-1')}/iso", headers={"X-Job-UUID": job})
    sim.wait(r.json()["location"])
    return job


def test_job_uuid_of_an_async_job_is_refused_on_synchronous_put_and_delete(sim: SimCtl) -> None:
    # RestServer.java:969-975 @ 5a29293: the check is on the HTTP method, not on whether the API is async
    job = _used_job_uuid(sim)
    headers = {"X-Job-UUID": job}
    login = {"logInByAccount": {"accountName": "admin", "password": sim_password_sha512()}}
    answers = [
        requests.put(f"{sim.api}/accounts/login", json=login, headers=headers, timeout=5),
        requests.put(f"{sim.api}/management-nodes/actions", json={"getVersion": {}}, headers=headers, timeout=5),
        requests.delete(f"{sim.api}/accounts/sessions/{'9' * 32}", headers=headers, timeout=5),
    ]
    assert [(r.status_code, r.text) for r in answers] == [(400, f"Duplicate job uuid[{job}]")] * 3


def test_job_uuid_of_an_async_job_is_not_checked_on_get(sim: SimCtl) -> None:
    job = _used_job_uuid(sim)
    r = requests.get(f"{sim.api}/accounts/sessions/{'9' * 32}/valid", headers={"X-Job-UUID": job}, timeout=5)
    assert r.status_code == 200 and r.json() == {"valid": False}


def test_synchronous_call_does_not_use_up_its_job_uuid(sim: SimCtl) -> None:
    # RestServer.java:1249-1262 @ 5a29293: only an async API stores an AsyncRestVO row under the UUID
    job = uuid.uuid4().hex
    r = requests.put(f"{sim.api}/management-nodes/actions", json={"getVersion": {}}, headers={"X-Job-UUID": job})
    assert r.status_code == 200
    assert sim.submit("POST", attach_path(sim), headers={"X-Job-UUID": job}).status_code == 202


@pytest.mark.parametrize("value", ["abc", "1.5", "9223372036854775808", ""])
def test_non_numeric_x_api_timeout_is_500_with_the_java_message(sim: SimCtl, value: str) -> None:
    # RestServer.java:987 @ 5a29293: Long.parseLong throws; the catch-all (L687-690) answers 500 with its message
    sim.clear_journal()
    r = sim.submit("POST", attach_path(sim), headers={"X-API-Timeout": value})
    assert (r.status_code, r.text) == (500, f'For input string: "{value}"')
    assert sim.journal()["counters"]["jobs"] == 0


@pytest.mark.parametrize(("value", "api_timeout"), [("0", 0), ("-5", -5000), ("+2", 2000)])
def test_zero_and_negative_x_api_timeout_are_accepted(sim: SimCtl, value: str, api_timeout: int) -> None:
    # RestServer.java:987 and ApiTimeoutManagerImpl.java:119-123 @ 5a29293: the value set is the apiTimeout
    r = sim.submit("POST", attach_path(sim), headers={"X-API-Timeout": value})
    assert r.status_code == 202 and r.json()["apiTimeout"] == api_timeout
    assert sim.wait(r.json()["location"])[0] == 200  # UNCONFIRMED what a node does with <= 0: the job completes
