"""The engine stand-in (devkit) against the real engine, on the same scenario and the same node.

Every behaviour the provider- and reliability-level tests assert through `Engine` runs here once through the
real CLI (driven by the Automation API, whose engine events name each step): step kinds, the order of the
node's writes (delete-before-replace), refresh rewriting inputs, and the order twin detection relies on.
Where they differ the real CLI is right; docs/pulumi-cli.md lists what differed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pulumi.automation import events

from tests.e2e.conftest import Project
from tests.support import engine_for, provider_host, writes

# The real engine's step names, in the stand-in's words.
KINDS = {"create": "create", "same": "same", "update": "update", "replace": "replace", "delete": "delete"}


def _real_up(project: Project, declared: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """`pulumi up` of `declared` through the Automation API: resource name -> step kind."""
    project.declare(declared, exports=False)
    kinds: dict[str, str] = {}

    def on_event(event: events.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None and pre.metadata.type.endswith("zstack:IsoAttachment"):
            op = pre.metadata.op.value
            if op in KINDS:
                kinds[pre.metadata.urn.split("::")[-1]] = KINDS[op]

    project.stack.up(on_event=on_event)
    return kinds


def _stand_in_up(engine: Any, declared: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    result = engine.up(declared).raise_on_error()
    return result.kinds


def _scenario(sim) -> list[tuple[str, Callable[[], None], dict[str, dict[str, str]]]]:
    """(what, a change by hand before the run, the declaration) for each run of the scenario."""
    web1, web2, rescue, ubuntu = (
        sim.vm("web-1"),
        sim.vm("web-2"),
        sim.image("rescue.iso"),
        sim.image("ubuntu-22.04-server.iso"),
    )
    first, second, _ = (c["uuid"] for c in sim.cdroms(web1))
    pinned = {"vm_uuid": web1, "iso_uuid": rescue, "cdrom_uuid": first}
    other = {"vm_uuid": web2, "iso_uuid": ubuntu}

    def nothing() -> None:
        pass

    def move_by_hand() -> None:
        assert sim.zstack("DELETE", f"vm-instances/{web1}/iso", params={"isoUuid": rescue})[0] == 200
        body = {"systemTags": [f"cdromUuid::{second}"]}
        assert sim.zstack("POST", f"vm-instances/{web1}/iso/{rescue}", json=body)[0] == 200

    return [
        ("create two", nothing, {"pinned": pinned, "other": other}),
        ("nothing changed", nothing, {"pinned": pinned, "other": other}),
        ("a pinned ISO moved by hand is replaced", move_by_hand, {"pinned": pinned, "other": other}),
        ("one removed from the program", nothing, {"pinned": pinned}),
    ]


def _journal_writes(sim) -> dict[str, list[str]]:
    """The node's writes since the journal was cleared, per VM in the order they came: the order that means
    something (a replacement's detach before its attach); writes to different VMs run in parallel."""
    per_vm: dict[str, list[str]] = {}
    for write in writes(sim):
        vm = write.split("/vm-instances/")[1].split("/")[0]
        per_vm.setdefault(vm, []).append(write)
    return per_vm


def test_the_stand_in_and_the_real_engine_take_the_same_steps_in_the_same_order(project: Project):
    sim = project.sim
    real: list[tuple[dict[str, str], dict[str, list[str]]]] = []
    for _what, by_hand, declared in _scenario(sim):
        by_hand()
        sim.clear_journal()
        real.append((_real_up(project, declared), _journal_writes(sim)))
    project.stack.destroy()

    sim.reset()
    stand_in: list[tuple[dict[str, str], dict[str, list[str]]]] = []
    with provider_host(sim.url) as host:
        engine = engine_for(host)
        for _what, by_hand, declared in _scenario(sim):
            by_hand()
            sim.clear_journal()
            stand_in.append((_stand_in_up(engine, declared), _journal_writes(sim)))
        engine.destroy()

    for (what, _, _), (real_kinds, real_writes), (stand_kinds, stand_writes) in zip(
        _scenario(sim), real, stand_in, strict=True
    ):
        assert stand_kinds == real_kinds, what
        assert stand_writes == real_writes, what  # e.g. the detach before the attach of a replacement


def test_refresh_rewrites_the_inputs_of_a_moved_attachment_as_the_stand_in_does(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    third = sim.cdroms(web1)[2]["uuid"]

    def move_by_hand() -> None:
        assert sim.zstack("DELETE", f"vm-instances/{web1}/iso", params={"isoUuid": rescue})[0] == 200
        assert sim.zstack("POST", f"vm-instances/{web1}/iso/{rescue}", json={"systemTags": [f"cdromUuid::{third}"]})

    declared = {"a": {"vm_uuid": web1, "iso_uuid": rescue}}
    _real_up(project, declared)
    move_by_hand()
    project.stack.refresh()
    real = project.resources()["a"]

    sim.reset()
    with provider_host(sim.url) as host:
        engine = engine_for(host)
        engine.up(declared).raise_on_error()
        move_by_hand()
        engine.refresh().raise_on_error()
        stand_in = engine.resource("a")
        engine.destroy()

    def placement(props: Mapping[str, Any]) -> dict[str, Any]:
        return {k: props.get(k) for k in ("vm_uuid", "iso_uuid", "cdrom_uuid", "device_id")}

    assert placement(real["inputs"]) == placement(stand_in.inputs)
    assert placement(real["outputs"]) == placement(stand_in.outputs)
    assert real["inputs"]["cdrom_uuid"] == third


@pytest.mark.parametrize("order", ["existing first", "twin first"])
def test_the_real_engine_diffs_an_existing_attachment_before_it_creates_a_twin(project: Project, order: str):
    """Twin detection assumes the existing resource's Diff comes before the new twin's Create. With the twin
    declared first in the program the real engine still registers resources in program order."""
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    inputs = {"vm_uuid": web1, "iso_uuid": rescue}
    project.declare_and_up({"a": inputs})
    sim.clear_journal()
    both = {"a": inputs, "b": inputs} if order == "existing first" else {"b": inputs, "a": inputs}
    project.declare(both)

    up = project.up(check=False)

    assert up.code != 0
    assert "is declared by two IsoAttachment resources in this deployment" in up.output
    assert set(project.resources()) == {"a"}
    assert writes(sim) == []
