"""How often the client polls a job (client/durations.py): the first jobs of a kind on the policy's schedule, then
only around the duration learned from them; against the simulator over real HTTP, counting the node's requests."""

from __future__ import annotations

import time

from devkit import SimCtl
from zstack_iso.client import ZStackClient
from zstack_iso.simulator import run_simulator

UBUNTU = "ubuntu-22.04-server.iso"
VIRTIO = "virtio-win-0.1.240.iso"
RESCUE = "rescue.iso"
JOB = 0.25  # seconds: long enough that the policy's own schedule polls it about 15 times
LOG_IN_FIRST = True  # the conftest client logs in before anything is counted


def _client(url: str, **arguments) -> ZStackClient:
    return ZStackClient(url, account_name="admin", account_password="password", job_timeout=10, **arguments)


def _polls(sim, call) -> int:
    """Run ``call`` and return how many job polls the node answered meanwhile."""
    sim.clear_journal()
    call()
    return sum("/api-jobs/" in r["path"] for r in sim.journal()["requests"])


def _attach_and_detach(sim, client, vm: str, isos: list[str]) -> tuple[list[int], list[int]]:
    """Attach each ISO, then detach each: the polls of every attach job and of every detach job."""
    attaches = [_polls(sim, lambda iso=iso: client.attach_iso(vm, iso)) for iso in isos]
    detaches = [_polls(sim, lambda iso=iso: client.detach_iso(vm, iso)) for iso in isos]
    return attaches, detaches


def test_the_first_jobs_of_a_kind_poll_on_the_policys_own_schedule(sim, client):
    sim.config(jobSeconds=JOB)
    vm, isos = sim.vm("web-1"), [sim.image(UBUNTU), sim.image(VIRTIO), sim.image(RESCUE)]
    attaches, detaches = _attach_and_detach(sim, client, vm, isos)
    # Every 15 ms, then 6 % of the elapsed time: about 15 polls for a 0.25 s job, however many jobs came before.
    assert min(attaches + detaches) >= 8, (attaches, detaches)
    assert all(not c.get("isoUuid") for c in sim.cdroms(vm))


def test_after_a_few_jobs_of_a_kind_a_job_takes_two_or_three_polls(sim, client):
    sim.config(jobSeconds=JOB)
    vm, isos = sim.vm("web-1"), [sim.image(UBUNTU), sim.image(VIRTIO), sim.image(RESCUE)]
    _attach_and_detach(sim, client, vm, isos)  # three of each kind: learned
    attaches = [_polls(sim, lambda iso=iso: client.attach_iso(vm, iso)) for iso in isos]
    # 2 or 3 each on a quiet machine; a loaded one wakes up late now and then, which costs a poll or two.
    assert sum(attaches) <= 9, attaches
    assert sorted(c.get("isoUuid") for c in sim.cdroms(vm)) == sorted(isos)
    vm_after = client.detach_iso(vm, isos[0])
    assert vm_after.cdrom_with_iso(isos[0]) is None and sim.cdroms(vm)[0].get("isoUuid") is None


def test_a_job_far_longer_than_learned_still_completes_soon_after_its_end(sim, client):
    sim.config(jobSeconds=0.1)
    vm, isos = sim.vm("web-1"), [sim.image(UBUNTU), sim.image(VIRTIO), sim.image(RESCUE)]
    _attach_and_detach(sim, client, vm, isos)  # learned: 0.1 s
    sim.config(jobSeconds=1.0)
    sim.clear_journal()
    started = time.monotonic()
    attached = client.attach_iso(vm, isos[0])
    elapsed = time.monotonic() - started
    polls = sum("/api-jobs/" in r["path"] for r in sim.journal()["requests"])
    assert attached.cdrom_with_iso(isos[0]) is not None
    # Past the learned end the policy's schedule takes over: its end is seen within 6 % of the job, about as
    # many polls as a job of unknown kind.
    assert 1.0 <= elapsed < 1.4, elapsed
    assert polls <= 45, polls


def test_attach_and_detach_and_a_stopped_vm_are_learned_apart(sim, client):
    sim.config(jobSeconds=JOB)
    running, isos = sim.vm("web-1"), [sim.image(UBUNTU), sim.image(VIRTIO), sim.image(RESCUE)]
    for iso in isos:  # three attaches to a Running VM, through the provider's path (the kind knows the state)
        client.ensure_iso_attached(client.get_vm(running), iso)
    first_detach = _polls(sim, lambda: client.ensure_iso_detached(client.get_vm(running), isos[0]))
    stopped = sim.vm("db-1")
    first_stopped_attach = _polls(sim, lambda: client.ensure_iso_attached(client.get_vm(stopped), isos[0]))
    learned_attach = _polls(sim, lambda: client.ensure_iso_attached(client.get_vm(running), isos[0]))
    assert first_detach >= 8 and first_stopped_attach >= 8, (first_detach, first_stopped_attach)
    assert learned_attach <= 5, learned_attach
    assert sim.cdroms(stopped)[0].get("isoUuid") == isos[0]


def test_what_one_node_taught_does_not_change_how_another_node_is_polled(sim, client):
    sim.config(jobSeconds=JOB)
    vm, isos = sim.vm("web-1"), [sim.image(UBUNTU), sim.image(VIRTIO), sim.image(RESCUE)]
    _attach_and_detach(sim, client, vm, isos)
    with run_simulator(host="127.0.0.1", port=0, job_seconds=JOB) as other:
        other_sim = SimCtl(other.url)
        with _client(other.url) as other_client:
            other_client.get_vm(other_sim.vm("web-1"))
            first = _polls(other_sim, lambda: other_client.attach_iso(other_sim.vm("web-1"), other_sim.image(UBUNTU)))
        other_sim.close()
    again = _polls(sim, lambda: client.attach_iso(vm, isos[0]))
    assert first >= 8 and again <= 5, (first, again)


def test_a_fixed_poll_interval_never_learns(sim):
    sim.config(jobSeconds=JOB)
    vm, isos = sim.vm("web-1"), [sim.image(UBUNTU), sim.image(VIRTIO), sim.image(RESCUE)]
    with _client(sim.url, poll_interval=0.1) as client:
        client.get_vm(vm)
        attaches, _ = _attach_and_detach(sim, client, vm, isos)
        attaches += [_polls(sim, lambda iso=iso: client.attach_iso(vm, iso)) for iso in isos]
    # At 0.1, 0.2 and 0.3 s, for every job: a learned schedule would skip the first two.
    assert min(attaches) >= 3, attaches


def test_jobs_that_became_faster_are_caught_up_with_in_a_few_jobs(sim, client):
    sim.config(jobSeconds=JOB)
    vm, isos = sim.vm("web-1"), [sim.image(UBUNTU), sim.image(VIRTIO), sim.image(RESCUE)]
    _attach_and_detach(sim, client, vm, isos)  # learned: 0.25 s
    sim.config(jobSeconds=0.02)
    took = []
    for i in range(8):
        started = time.monotonic()
        client.attach_iso(vm, isos[i % 3])
        took.append(time.monotonic() - started)
        client.detach_iso(vm, isos[i % 3])
    # Each job found done at its first poll moves the next first poll twice as many steps earlier.
    assert max(took[-2:]) < 0.15, took
