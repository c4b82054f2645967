"""IsoAttachment through the SDK's own provider host (`python -m pulumi.dynamic`) over gRPC, as the engine
drives it: a whole life of a stack, from the first preview to a destroy after the VM vanished."""

from __future__ import annotations

import base64
import os
import pickle
import signal
import time

from devkit import UNKNOWN, ProviderHost
from tests.support import host_config, named, writes
from zstack_iso.provider import IsoAttachmentProvider


def iso_slots(sim, vm: str) -> dict[str, int]:
    """ISO UUID -> device id, for every ISO attached to the VM."""
    return {c["isoUuid"]: c["deviceId"] for c in sim.cdroms(vm) if c.get("isoUuid")}


def declared(sim) -> dict[str, dict[str, str]]:
    web1, web2, db1 = sim.vm("web-1"), sim.vm("web-2"), sim.vm("db-1")
    return {
        "web-1-ubuntu": {"vm_uuid": web1, "iso_uuid": sim.image("ubuntu-22.04-server.iso")},
        "web-1-virtio": {
            "vm_uuid": web1,
            "iso_uuid": sim.image("virtio-win-0.1.240.iso"),
            "cdrom_uuid": sim.cdroms(web1)[2]["uuid"],
        },
        "web-2-rescue": {"vm_uuid": web2, "iso_uuid": sim.image("rescue.iso")},
        "db-1-ubuntu": {"vm_uuid": db1, "iso_uuid": sim.image("ubuntu-22.04-server.iso")},
    }


def test_a_stack_lives_from_preview_to_destroy(sim, engine, host):
    resources = declared(sim)
    web1 = sim.vm("web-1")

    # preview: planned creates, nothing written
    plan = engine.preview(resources)
    assert plan.raise_on_error().kinds == dict.fromkeys(resources, "create")
    assert writes(sim) == []

    # up: every ISO where it was declared
    engine.up(resources).raise_on_error()
    assert iso_slots(sim, web1) == {resources["web-1-ubuntu"]["iso_uuid"]: 0, resources["web-1-virtio"]["iso_uuid"]: 2}
    assert iso_slots(sim, sim.vm("db-1")) == {resources["db-1-ubuntu"]["iso_uuid"]: 0}
    virtio = engine.resource("web-1-virtio")
    assert virtio.id == f"{web1}/{resources['web-1-virtio']['iso_uuid']}"
    assert virtio.outputs["device_id"] == 2

    # a second up changes nothing and writes nothing
    sim.clear_journal()
    assert engine.up(resources).raise_on_error().kinds == dict.fromkeys(resources, "same")
    assert writes(sim) == []

    # an ISO detached by hand: the preview shows a replacement and a warning, refresh drops it, up restores it
    ubuntu = resources["web-1-ubuntu"]["iso_uuid"]
    assert sim.zstack("DELETE", f"vm-instances/{web1}/iso", params={"isoUuid": ubuntu})[0] == 200
    mark = host.mark()
    plan = engine.preview(resources)
    assert plan.kinds["web-1-ubuntu"] == "replace"
    assert plan.steps["web-1-ubuntu"].diff.replaces == ["iso_uuid"]
    assert {k for k, v in plan.kinds.items() if v != "same"} == {"web-1-ubuntu"}
    where = f"{named('ISO', ubuntu, 'ubuntu-22.04-server.iso')} on {named('VM', web1, 'web-1')}"
    assert f"warning: {where}: detached outside Pulumi" in host.stderr_text(mark)
    assert engine.refresh().raise_on_error().kinds["web-1-ubuntu"] == "delete"
    assert engine.up(resources).raise_on_error().kinds["web-1-ubuntu"] == "create"
    assert iso_slots(sim, web1)[ubuntu] == 0

    # replacement by another ISO: the old one leaves its slot before the new one arrives
    rescue = sim.image("rescue.iso")
    resources["web-1-ubuntu"] = {"vm_uuid": web1, "iso_uuid": rescue}
    step = engine.up(resources).raise_on_error().steps["web-1-ubuntu"]
    assert step.kind == "replace" and step.diff.delete_before_replace
    assert ubuntu not in iso_slots(sim, web1)
    assert iso_slots(sim, web1)[rescue] == 0

    # destroy detaches everything
    engine.destroy().raise_on_error()
    assert engine.names() == []
    for vm in ("web-1", "web-2", "db-1"):
        assert iso_slots(sim, sim.vm(vm)) == {}


def test_destroy_succeeds_after_the_vm_vanished(sim, engine):
    resources = declared(sim)
    engine.up(resources).raise_on_error()
    web1 = sim.vm("web-1")
    assert sim.zstack("DELETE", f"vm-instances/{web1}")[0] == 200
    assert sim.zstack("PUT", f"vm-instances/{web1}/actions", json={"expungeVmInstance": {}})[0] == 200
    result = engine.destroy().raise_on_error()
    assert set(result.kinds) == set(resources)
    assert engine.names() == []


def test_refresh_reports_a_destroyed_vm_as_gone_and_keeps_the_rest(sim, engine):
    resources = declared(sim)
    engine.up(resources).raise_on_error()
    assert sim.zstack("DELETE", f"vm-instances/{sim.vm('web-2')}")[0] == 200
    kinds = engine.refresh().raise_on_error().kinds
    assert kinds["web-2-rescue"] == "delete"
    assert {k for k, v in kinds.items() if v == "same"} == set(resources) - {"web-2-rescue"}


def test_preview_with_a_vm_computed_by_another_resource_plans_a_replacement(sim, engine):
    resources = declared(sim)
    engine.up(resources).raise_on_error()
    pending = dict(resources, **{"web-2-rescue": {**resources["web-2-rescue"], "vm_uuid": UNKNOWN}})
    plan = engine.preview(pending).raise_on_error()
    assert plan.kinds["web-2-rescue"] == "replace"
    assert plan.steps["web-2-rescue"].diff.replaces == ["vm_uuid"]


def test_bad_input_is_refused_at_check_with_the_property_named(sim, engine):
    result = engine.up({"bad": {"vm_uuid": "web-1", "iso_uuid": sim.image("rescue.iso")}})
    assert result.kinds == {"bad": "create"}
    error = str(result.errors["bad"])
    assert "vm_uuid" in error and "32 hexadecimal characters" in error
    assert writes(sim) == []


def test_an_impossible_attachment_fails_with_a_message_naming_the_vm_and_iso(sim, engine, host):
    vm, iso = sim.vm("legacy-1"), sim.image("rescue.iso")
    result = engine.up({"legacy": {"vm_uuid": vm, "iso_uuid": iso}})
    message = result.errors["legacy"].message
    assert f"cannot attach {named('ISO', iso, 'rescue.iso')}: {named('VM', vm, 'legacy-1')} has no CD-ROM" in message
    assert engine.names() == []


def test_update_keeps_outputs_if_the_engine_ever_calls_it(sim, engine, host):
    resources = declared(sim)
    engine.up(resources).raise_on_error()
    state = engine.resource("web-2-rescue")
    outs = host.update(state.id, state.outputs, state.inputs)
    assert {k: outs[k] for k in ("vm_uuid", "iso_uuid", "cdrom_uuid", "device_id")} == {
        k: state.outputs[k] for k in ("vm_uuid", "iso_uuid", "cdrom_uuid", "device_id")
    }


def test_the_provider_host_logs_its_session_out_when_it_is_interrupted(sim, simulator):
    host = ProviderHost(IsoAttachmentProvider(), config=host_config(simulator.url))
    with host:
        vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
        host.read(f"{vm}/{iso}", {"vm_uuid": vm, "iso_uuid": iso})
        assert len(simulator.node.sessions) == 1
        os.kill(host.pid, signal.SIGINT)  # as the engine stops a plugin at the end of a deployment
        deadline = time.monotonic() + 30  # a loaded machine: logging out may take seconds
        while host.alive and time.monotonic() < deadline:
            time.sleep(0.05)
    assert simulator.node.sessions == {}
    assert [r["method"] for r in sim.journal()["requests"] if "/accounts/sessions/" in r["path"]] == ["DELETE"]


def test_a_rename_without_aliases_leaves_the_iso_attached_when_the_state_holds_another_pickle_of_the_provider(
    sim, simulator
):
    # The host loads one provider per distinct `__provider` string. A state written under another Python, SDK or
    # dill release holds another string than the program's: here pickle protocol 2 against the SDK's own.
    state_string = base64.b64encode(pickle.dumps(IsoAttachmentProvider(), protocol=2)).decode()
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    with ProviderHost(IsoAttachmentProvider(), config=host_config(simulator.url)) as host:
        assert state_string != host.provider_string
        old_id, old_outputs = host.create({"vm_uuid": vm, "iso_uuid": iso, "__provider": state_string}, name="old")
        host.restart()  # the next deployment, in a process of its own
        # Renamed without aliases: the engine creates `new` (the program's string), then deletes `old` (the state's).
        host.create({"vm_uuid": vm, "iso_uuid": iso}, name="new")
        log = host.mark()
        host.delete(old_id, old_outputs, name="old")
        # The host's stderr is drained by a thread: wait for the line rather than read what arrived so far.
        host.wait_for_stderr("is now managed by another IsoAttachment of this deployment", since=log)
    assert iso_slots(sim, vm) == {iso: 0}
    assert [w for w in writes(sim) if w.startswith("DELETE")] == []
