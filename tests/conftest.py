"""Shared fixtures: one in-process simulator per test session (per xdist worker), reset for every test; the
provider host and engine stand-in on it; and the module-scoped simulators some tests need (more VMs, canary
credentials, HTTPS)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit import Engine, ProviderHost, SimCtl
from tests.support import TYPE, canary_seed, make_certificate, provider_host
from zstack_iso.client import forget_shared_sessions
from zstack_iso.runtime import forget_runtimes
from zstack_iso.simulator import Simulator, run_simulator


@contextlib.contextmanager
def _reset(url: str, **kwargs: Any) -> Iterator[SimCtl]:
    """A SimCtl of the simulator at url, reset to its seed, closed afterwards."""
    ctl = SimCtl(url, **kwargs)
    ctl.reset()
    try:
        yield ctl
    finally:
        ctl.close()


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    """One simulator on a free loopback port for the whole test session."""
    with run_simulator(host="127.0.0.1", port=0, job_seconds=0.02) as sim:
        yield sim


@pytest.fixture
def sim(simulator: Simulator) -> Iterator[SimCtl]:
    """The session's simulator, reset to the default inventory, with 0.02 s jobs."""
    with _reset(simulator.url) as ctl:
        # The reset ended the node's sessions; clients and providers made from now on start afresh, as in a new
        # process (each test's providers are a deployment of their own).
        forget_shared_sessions()
        forget_runtimes()
        ctl.config(jobSeconds=0.02)
        yield ctl


@pytest.fixture
def farm(farm_node: Simulator) -> Iterator[SimCtl]:
    """A module's own simulator (its `farm_node` fixture, e.g. with more VMs), reset for every test."""
    with _reset(farm_node.url) as ctl:
        yield ctl


@pytest.fixture(scope="module")
def host(request: pytest.FixtureRequest, simulator: Simulator) -> Iterator[ProviderHost]:
    """The SDK's provider host for the session's simulator, as admin, for a whole module. A module's
    HOST_SETTINGS (zstack: keys without the prefix, e.g. {"jobTimeout": "2"}) are added to its config."""
    with provider_host(simulator.url, **getattr(request.module, "HOST_SETTINGS", {})) as provider_host_:
        yield provider_host_


@pytest.fixture
def engine(host: ProviderHost, sim: SimCtl) -> Engine:
    """The engine stand-in on the module's host, with an empty stack."""
    return Engine(host, type_=TYPE)


@pytest.fixture(scope="module")
def canary_node() -> Iterator[Simulator]:
    """A module's own simulator whose admin password and AccessKey secret are canaries (tests.support)."""
    with run_simulator(port=0, seed=canary_seed(), job_seconds=0.02) as node:
        yield node


@pytest.fixture
def canary_ctl(canary_node: Simulator) -> Iterator[SimCtl]:
    """The canary simulator, reset for every test."""
    with _reset(canary_node.url) as ctl:
        yield ctl


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, Path, Path]]:
    """A module's own simulator serving HTTPS with a self-signed certificate for 127.0.0.1: (the node, its
    certificate, another CA's certificate that did not sign it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = make_certificate(folder, "zstack-node")
    stranger, _ = make_certificate(folder, "another-ca")
    with run_simulator(host="127.0.0.1", port=0, job_seconds=0.02, tls_cert=cert, tls_key=key) as node:
        yield node, cert, stranger


@pytest.fixture
def tls_ctl(tls_node: tuple[Simulator, Path, Path]) -> Iterator[SimCtl]:
    """The HTTPS simulator, reset for every test, trusting its certificate."""
    node, cert, _ = tls_node
    with _reset(node.url, verify=str(cert)) as ctl:
        yield ctl
