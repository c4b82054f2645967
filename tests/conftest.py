"""Shared fixtures: one in-process simulator per test session (per xdist worker), reset for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit import Engine, ProviderHost, SimCtl
from tests.support import TYPE, host_config
from zstack_iso.client import forget_shared_sessions
from zstack_iso.provider import IsoAttachmentProvider
from zstack_iso.simulator import Simulator, run_simulator


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    """One simulator on a free loopback port for the whole test session."""
    with run_simulator(host="127.0.0.1", port=0, job_seconds=0.02) as sim:
        yield sim


@pytest.fixture
def sim(simulator: Simulator) -> Iterator[SimCtl]:
    """The session's simulator, reset to the default inventory, with 0.02 s jobs."""
    ctl = SimCtl(simulator.url)
    ctl.reset()
    # The reset ended the node's sessions; clients made from now on log in afresh, as in a new process.
    forget_shared_sessions()
    ctl.config(jobSeconds=0.02)
    yield ctl
    ctl.close()


@pytest.fixture
def farm(farm_node: Simulator) -> Iterator[SimCtl]:
    """A module's own simulator (its `farm_node` fixture, e.g. with more VMs), reset for every test."""
    ctl = SimCtl(farm_node.url)
    ctl.reset()
    yield ctl
    ctl.close()


@pytest.fixture(scope="module")
def host(simulator: Simulator) -> Iterator[ProviderHost]:
    """The SDK's provider host for the session's simulator, as admin, for a whole module (modules that need
    other settings define their own `host`)."""
    with ProviderHost(
        IsoAttachmentProvider(), config=host_config(simulator.url), secret_keys=["zstack:accountPassword"]
    ) as provider_host:
        yield provider_host


@pytest.fixture
def engine(host: ProviderHost, sim: SimCtl) -> Engine:
    """The engine stand-in on the module's host, with an empty stack."""
    return Engine(host, type_=TYPE)
