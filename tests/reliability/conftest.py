"""The reliability campaign's engine: the stand-in on the module's host, whose stack is destroyed after the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit import Engine, ProviderHost, SimCtl
from tests.support import engine_for


@pytest.fixture
def engine(host: ProviderHost, sim: SimCtl) -> Iterator[Engine]:
    """The engine stand-in with an empty stack. The module's host outlives the test's deployment: afterwards the
    faults are cleared and the stack destroyed, so that the next test starts from nothing."""
    engine = engine_for(host)
    yield engine
    sim.clear_faults()
    engine.destroy()
