"""The example program under `pulumi.runtime.set_mocks`, its lookups against the simulator, and the
`__provider` it registers replayed into a fresh provider host."""

from __future__ import annotations

import pytest

from devkit import PROJECT_ROOT, Engine, ProviderHost, run_program

TYPE = "pulumi-python:dynamic/zstack:IsoAttachment"
PROGRAM = PROJECT_ROOT / "__main__.py"


def stack_config(url: str) -> dict[str, str]:
    return {"zstack:endpoint": url, "zstack:accountName": "admin", "zstack:accountPassword": "password"}


@pytest.fixture(autouse=True)
def _no_zstack_environment(monkeypatch):
    for name in ("ZSTACK_ENDPOINT", "ZSTACK_HOST", "ZSTACK_ACCOUNT_NAME", "ZSTACK_ACCOUNT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def test_the_example_declares_the_demo_set_for_the_default_inventory(sim):
    run = run_program(PROGRAM, stack_config(sim.url))
    attachments = {r.name: r for r in run.dynamic()}
    assert {r.typ for r in attachments.values()} == {TYPE}
    assert set(attachments) == {
        "web-1--ubuntu-22.04-server.iso",
        "web-1--virtio-win-0.1.240.iso",
        "web-2--rescue.iso",
        "db-1--ubuntu-22.04-server.iso",
    }
    pinned = attachments["web-1--virtio-win-0.1.240.iso"].props
    assert pinned["vm_uuid"] == sim.vm("web-1")
    assert pinned["iso_uuid"] == sim.image("virtio-win-0.1.240.iso")
    assert pinned["cdrom_uuid"] == sim.cdroms(sim.vm("web-1"))[2]["uuid"]
    assert "cdrom_uuid" not in attachments["web-2--rescue.iso"].props
    assert set(run.exports) == {name.replace("--", "/") for name in attachments}


def test_the_example_reads_attachments_from_stack_config(sim):
    config = {**stack_config(sim.url), "attachments": [{"vm": "web-2", "iso": "virtio-win-0.1.240.iso"}]}
    run = run_program(PROGRAM, config)
    assert [r.name for r in run.dynamic()] == ["web-2--virtio-win-0.1.240.iso"]


def test_the_example_names_a_vm_it_cannot_find(sim):
    config = {**stack_config(sim.url), "attachments": [{"vm": "no-such-vm", "iso": "rescue.iso"}]}
    with pytest.raises(Exception, match="no VM named 'no-such-vm'"):
        run_program(PROGRAM, config)


def test_the_registered_provider_loads_in_a_fresh_provider_host_and_deploys(sim):
    run = run_program(PROGRAM, stack_config(sim.url))
    provider_strings = {r.provider_string for r in run.dynamic()}
    assert len(provider_strings) == 1
    with ProviderHost(provider_strings.pop(), config=stack_config(sim.url)) as host:
        engine = Engine(host, type_=TYPE)
        engine.up(run.declared()).raise_on_error()
        web1 = sim.vm("web-1")
        assert {c["deviceId"]: c.get("isoUuid") for c in sim.cdroms(web1)} == {
            0: sim.image("ubuntu-22.04-server.iso"),
            1: None,
            2: sim.image("virtio-win-0.1.240.iso"),
        }
        engine.destroy().raise_on_error()
    assert all(c.get("isoUuid") is None for c in sim.cdroms(web1))


def test_a_preview_of_the_example_writes_nothing(sim):
    sim.clear_journal()
    run = run_program(PROGRAM, stack_config(sim.url), preview=True)
    assert len(run.dynamic()) == 4
    assert [r for r in sim.journal()["requests"] if r["method"] != "GET" and "/accounts/" not in r["path"]] == []
