"""The client layer's fixture: a ZStackClient of the test's simulator, as admin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit import SimCtl
from zstack_iso.client import ZStackClient


@pytest.fixture
def client(request: pytest.FixtureRequest, sim: SimCtl) -> Iterator[ZStackClient]:
    """A client of the test's simulator as admin: 10 s job timeout, 2 s to settle a job whose result was lost.

    It logs in on its first call (test_jobs has threads race for that), or before the test in a module that sets
    LOG_IN_FIRST = True, whose tests arm faults that a login must not meet."""
    c = ZStackClient(sim.url, account_name="admin", account_password="password", job_timeout=10, settle_timeout=2.0)
    if getattr(request.module, "LOG_IN_FIRST", False):
        c.get_vm(sim.vm("web-1"))
    yield c
    c.close()
