"""The provider process's shared VM reads (zstack_iso/runtime.py `SharedReads`), with a loader that counts.

Through the provider and the simulator, test_methods.py shows what a user sees (one read of each VM per
deployment, changes made by hand seen by the next one); these pin the rules at the edges: age, failures, and
reads in flight."""

from __future__ import annotations

import threading

import pytest

from zstack_iso.runtime import SharedReads

VM, OTHER = "a" * 32, "b" * 32


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate: threading.Event | None = None

    def __call__(self, vm_uuid: str) -> str:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RuntimeError("node unreachable")
        return f"{vm_uuid} read {self.calls}"


def test_a_shared_read_is_not_served_once_it_is_older_than_max_age():
    now = [100.0]
    load = Loader()
    reads = SharedReads(load, max_age=10.0, clock=lambda: now[0])
    assert reads.get((VM, "iso-1")) == f"{VM} read 1"
    now[0] += 9.9
    assert reads.get((VM, "iso-2")) == f"{VM} read 1"
    now[0] += 0.2
    assert reads.get((VM, "iso-3")) == f"{VM} read 2"


def test_a_failed_read_is_raised_to_its_caller_and_never_served_again():
    load = Loader()
    reads = SharedReads(load)
    load.fail = True
    with pytest.raises(RuntimeError, match="node unreachable"):
        reads.get((VM, "iso-1"))
    load.fail = False
    assert reads.get((VM, "iso-2")) == f"{VM} read 2"


def test_reads_of_other_vms_are_not_shared():
    load = Loader()
    reads = SharedReads(load)
    assert reads.get((VM, "iso-1")) == f"{VM} read 1"
    assert reads.get((OTHER, "iso-1")) == f"{OTHER} read 2"


def test_a_read_in_flight_is_shared_even_with_an_attachment_that_already_had_it():
    load = Loader()
    load.gate = threading.Event()
    asked = []

    def clock() -> float:  # called once per `get`, under the lock, before the get joins or starts a read
        asked.append(1)
        if len(asked) == 2:
            load.gate.set()  # the second get has decided: only now may the first read finish
        return 0.0

    reads = SharedReads(load, clock=clock)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(reads.get((VM, "iso-1")))) for _ in range(2)]
    threads[0].start()
    while load.calls == 0:
        threading.Event().wait(0.01)
    threads[1].start()
    for thread in threads:
        thread.join(5)
    assert results == [f"{VM} read 1"] * 2
    assert load.calls == 1
