"""The async job protocol (§3.2-3.4) over real HTTP."""

from __future__ import annotations

import time
import uuid

import requests

from tests.simctl import SimCtl


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
