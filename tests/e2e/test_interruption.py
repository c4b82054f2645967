"""`pulumi up` interrupted while an attach job runs on the node: what a user runs next converges, and no job is
submitted twice (the simulator's journal counts the jobs it accepted).

After Ctrl-C (SIGINT) the CLI waits for the operation in flight and records it: `pulumi up` again is enough.
After `kill -9` it leaves its lock and a pending create: `pulumi cancel` removes the lock, `pulumi refresh
--clear-pending-creates` drops the pending record, and `pulumi up` creates the attachment again without a
second job (the provider adopts the attach that completed meanwhile, or waits for the job still running).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Project, attach_jobs
from tests.support import iso_slots

JOB_SECONDS = 4.0  # long enough to interrupt the CLI in the middle of the attach job


def _start_up(project: Project) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [project.cli, "up", "--yes", "--skip-preview"],
        cwd=project.dir,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_attach_job(project: Project, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not attach_jobs(project.sim):
        assert time.monotonic() < deadline, "the CLI never submitted the attach job"
        time.sleep(0.05)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (the CLI starts each plugin in a process group of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pids: list[int]) -> None:
    """What the CLI leaves behind after kill -9: the SDK's provider host never notices that its parent died,
    and goes on (a user would find it with `pgrep -f pulumi.dynamic`)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _up_caught_attaching(project: Project) -> Iterator[subprocess.Popen[str]]:
    """`pulumi up` started and caught while its attach job runs; killed on exit, with the plugins it started."""
    cli = _start_up(project)
    plugins: list[int] = []
    try:
        _wait_for_attach_job(project)
        plugins = _descendants(cli.pid)
        yield cli
    finally:
        cli.kill()
        _kill(plugins)


@pytest.fixture
def slow_jobs(project: Project) -> Project:
    project.sim.config(jobSeconds=JOB_SECONDS)
    web1, rescue = project.sim.vm("web-1"), project.sim.image("rescue.iso")
    project.declare({"a": {"vm_uuid": web1, "iso_uuid": rescue}})
    project.sim.clear_journal()
    return project


def test_ctrl_c_during_an_attach_lets_it_finish_and_the_next_up_changes_nothing(slow_jobs: Project):
    project, sim = slow_jobs, slow_jobs.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    with _up_caught_attaching(project) as cli:
        cli.send_signal(signal.SIGINT)
        out, _ = cli.communicate(timeout=120)

    assert "cancelling" in out.lower()
    assert rescue in iso_slots(sim, web1)  # the attach job was not abandoned
    assert project.pending_operations() == []
    assert "a" in project.resources()

    again = project.up()

    assert "2 unchanged" in again.stdout
    assert attach_jobs(sim) == [f"{web1}/iso/{rescue}"]


@pytest.mark.parametrize("when", ["job still running", "job finished"])
def test_kill_9_during_an_attach_then_cancel_and_up_converge_without_a_second_job(slow_jobs: Project, when: str):
    project, sim = slow_jobs, slow_jobs.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    with _up_caught_attaching(project) as cli:
        cli.kill()
        cli.communicate(timeout=30)
        if when == "job finished":
            time.sleep(JOB_SECONDS + 1)

        locked = project.up(check=False)

        assert locked.code != 0
        assert "the stack is currently locked" in locked.output and "pulumi cancel" in locked.output

        project.pulumi("cancel", "--yes")
        # The interrupted create is recorded as pending; a refresh drops that record (the CLI asks first,
        # unless told with --clear-pending-creates), then `up` creates the attachment once more.
        project.refresh("--clear-pending-creates")
        assert project.pending_operations() == []
        project.up()

    assert rescue in iso_slots(sim, web1)
    assert attach_jobs(sim) == [f"{web1}/iso/{rescue}"]  # one job, whatever the moment of the kill
    assert project.pending_operations() == []
    project.preview("--expect-no-changes")
