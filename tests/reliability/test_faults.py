"""Every fault the simulator can inject, on every call each provider step makes, through the provider host.

Steps: create (`up` of a new attachment), delete (`destroy`), read (`refresh`) and diff (`up` of an existing
attachment). Calls: login, query (the VM read), submit (the attach/detach job) and poll (the job's status).
For each pair the outcome is success with the right live state or a clear error, and the next run converges:
no duplicate job, no lost attachment, and a refresh that agrees with the node.
"""

from __future__ import annotations

from typing import Any

import pytest

from devkit import ProviderError
from tests.support import (
    ERROR_PREFIX,
    counters,
    disagreements,
    engine_for,
    holders,
    named,
    provider_host,
    wait_quiet,
)

# The settings of this module's provider host (the `host` fixture in tests/conftest.py).
HOST_SETTINGS = {"requestTimeout": "0.3", "jobTimeout": "10"}

INJECTED = {"code": "SYS.1000", "description": "An internal error happened", "details": "injected: agent lost"}
ACTIONS: dict[str, dict[str, Any]] = {
    "http_500": {"action": "http_status", "status": 500},
    "http_502": {"action": "http_status", "status": 502},
    "http_503": {"action": "http_status", "status": 503},
    "http_504": {"action": "http_status", "status": 504},
    "drop_connection": {"action": "drop_connection"},
    "drop_after_accept": {"action": "drop_after_accept"},
    "job_error": {"action": "job_error", "error": INJECTED},
    "expire_job": {"action": "expire_job"},
    "delay_past_timeout": {"action": "delay", "delayMs": 600},  # the host's requestTimeout is 0.3 s
}
STEP_CALLS = {
    "create": ("login", "query", "image query", "submit", "poll"),
    "delete": ("login", "query", "submit", "poll"),
    "read": ("login", "query"),
    "diff": ("login", "query"),
}
CASES = [(step, call, action) for step, calls in STEP_CALLS.items() for call in calls for action in ACTIONS]
JOB_SECONDS = 0.05
TIMEOUT_HINT = (
    "Hint: the node may still finish the job: run the deployment again once the node answers (it adopts an "
    "attachment that finished meanwhile), or raise zstack:jobTimeout / zstack:requestTimeout"
)


@pytest.fixture
def target(sim):
    sim.config(jobSeconds=JOB_SECONDS)
    return sim.vm("web-1"), sim.image("rescue.iso")


def expected_outcome(step: str, call: str, action: str) -> str:
    """ok: the step succeeds despite the fault; error: it fails clearly; either: the node itself says the job
    failed while the simulator still runs it, so the provider reports the failure or sees the work done."""
    if action in ("http_500", "job_error") and call in ("login", "query", "image query", "submit"):
        return "error"  # the node answered with a failure: nothing was executed, nothing to retry blindly
    if call == "poll" and action == "job_error":
        return "either"
    return "ok"


def fault_spec(step: str, call: str, action: str, vm: str, iso: str) -> dict[str, Any]:
    where = {
        "login": {"method": "PUT", "pathRegex": r"^/zstack/v1/accounts/login$"},
        "query": {"method": "GET", "pathRegex": rf"^/zstack/v1/vm-instances/{vm}$"},
        "image query": {"method": "GET", "pathRegex": rf"^/zstack/v1/images/{iso}$"},
        "poll": {"method": "GET", "pathRegex": r"^/zstack/v1/api-jobs/"},
        "submit": {"method": "POST", "pathRegex": rf"^/zstack/v1/vm-instances/{vm}/iso/{iso}$"}
        if step == "create"
        else {"method": "DELETE", "pathRegex": rf"^/zstack/v1/vm-instances/{vm}/iso\?isoUuid={iso}$"},
    }[call]
    return {**where, **ACTIONS[action], "times": 1}


def expected_message(step: str, call: str, action: str, vm: str, iso: str) -> str:
    """The start of the message a user reads, up to the job UUID and endpoint that vary from run to run."""
    what = {
        "create": f"attaching ISO {iso} to VM {vm} failed: ",
        "delete": f"detaching ISO {iso} from VM {vm} failed: ",
        "read": f"refresh of ISO {iso} on VM {vm}: reading the VM failed: ",
        "diff": f"looking for changes to {named('ISO', iso, 'rescue.iso')} on {named('VM', vm, 'web-1')} made "
        "outside Pulumi: reading the VM and the ISO image failed: ",
    }[step]
    api = {
        "login": "LogInByAccount, PUT /zstack/v1/accounts/login",
        "query": f"QueryVmInstance, GET /zstack/v1/vm-instances/{vm}",
        "image query": f"QueryImage, GET /zstack/v1/images/{iso}",
        "submit": f"AttachIsoToVmInstance, POST /zstack/v1/vm-instances/{vm}/iso/{iso}"
        if step == "create"
        else f"DetachIsoFromVmInstance, DELETE /zstack/v1/vm-instances/{vm}/iso?isoUuid={iso}",
    }
    api["poll"] = api["submit"]
    if action == "job_error":
        cause = f"SYS.1000 (An internal error happened): injected: agent lost [{api[call]}"
    else:
        cause = (
            "CLIENT.HTTP (The ZStack management node rejected the request without a ZStack error code): "
            f"HTTP 500: (empty body) [{api[call]}"
        )
    return ERROR_PREFIX + what + cause


def run_step(step: str, engine, declared):
    if step in ("create", "diff"):
        return engine.up(declared)
    if step == "delete":
        return engine.destroy()
    return engine.refresh()


def converge(step: str, engine, declared) -> None:
    """The next run after the fault: the same command again, then a refresh, must succeed."""
    if step == "delete":
        engine.destroy().raise_on_error()
        assert engine.names() == []
        return
    engine.up(declared).raise_on_error()
    engine.refresh().raise_on_error()
    assert engine.names() == ["att"]


@pytest.mark.parametrize(("step", "call", "action"), CASES)
def test_a_fault_ends_in_success_or_a_clear_error_and_the_next_run_converges(sim, engine, target, step, call, action):
    vm, iso = target
    declared = {"att": {"vm_uuid": vm, "iso_uuid": iso}}
    if step != "create":
        engine.up(declared).raise_on_error()
    if call == "login":
        sim.expire_sessions()  # the step's first call finds its session expired and logs in again
    sim.fault(**fault_spec(step, call, action, vm, iso))

    result = run_step(step, engine, declared)

    outcome = expected_outcome(step, call, action)
    error = result.errors.get("att")
    if outcome == "ok":
        assert error is None, f"expected success, got {error}"
    elif outcome == "error":
        assert isinstance(error, ProviderError), f"expected a clear error, got {error!r}"
    if error is not None:
        assert error.message.startswith(expected_message(step, call, action, vm, iso)), error.message
    if error is None and step in ("create", "diff", "read"):
        assert disagreements(engine, sim) == []

    sim.clear_faults()
    # A delayed request still runs once its delay is over; let it land before this test ends.
    wait_quiet(sim, 0.7 if action == "delay_past_timeout" else 0.15)
    # Whatever happened, a refresh now makes the state agree with the node ...
    engine.refresh().raise_on_error()
    assert disagreements(engine, sim) == []
    # ... and the next run converges.
    converge(step, engine, declared)
    attached = holders(sim, vm, iso)
    if step == "delete":
        assert attached == []
    else:
        assert len(attached) == 1
        assert disagreements(engine, sim) == []
    # One attach job (and one detach job for a delete); a job the node failed by injection did nothing.
    wasted = 1 if (call == "submit" and action == "job_error") else 0
    assert counters(sim)["jobs"] == (2 if step == "delete" else 1) + wasted


def test_a_job_slower_than_the_job_timeout_fails_clearly_and_the_next_run_waits_for_it(sim, simulator):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    declared = {"att": {"vm_uuid": vm, "iso_uuid": iso}}
    sim.config(jobSeconds=2.0)
    with provider_host(simulator.url, jobTimeout="0.5") as impatient:
        error = engine_for(impatient).up(declared).errors["att"]
    assert error.message.startswith(
        f"{ERROR_PREFIX}attaching ISO {iso} to VM {vm} failed: CLIENT.TIMEOUT (A ZStack call or job did not "
        "finish in time): job "
    ), error.message
    assert "did not finish within job timeout 0.5 s; it may still be running on the node" in error.message
    assert error.message.endswith(TIMEOUT_HINT), error.message
    assert holders(sim, vm, iso) == []  # the job still runs

    # The user follows the hint: the next run, with a longer jobTimeout, comes while that job still runs and
    # waits for it (the same idempotency key, §3.2) instead of submitting a second attach.
    with provider_host(simulator.url, jobTimeout="10") as patient:
        engine = engine_for(patient)
        engine.up(declared).raise_on_error()
        engine.refresh().raise_on_error()
    assert len(holders(sim, vm, iso)) == 1
    assert disagreements(engine, sim) == []
    assert counters(sim)["jobs"] == 1
