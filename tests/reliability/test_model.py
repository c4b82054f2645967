"""Model-based: random sequences of declarations, deployments and out-of-band changes (hypothesis).

A state machine declares and removes attachments (each change is a `pulumi up` through the provider host) while
someone else starts, stops, destroys and recovers VMs and attaches or detaches ISOs by hand. After every step:
the node's invariants hold (an ISO at most once per VM, at most one ISO per CD-ROM, at most 3 CD-ROMs), the
provider's read of every resource in the state agrees with the node, a failure is one a user can act on and
is true of the node, and every resource a deployment reported as done is where the state says.

Bounded for CI: a derandomized profile, few examples and steps (about 20 s).
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from devkit import ProviderError, SimCtl
from tests.support import ERROR_PREFIX, ISOS, disagreements, engine_for, holders, iso_slots, named, provider_host

# The settings of this module's provider host (the `host` fixture in tests/conftest.py).
HOST_SETTINGS = {"jobTimeout": "5"}

VMS = ("web-1", "web-2", "db-1")
PROFILE = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,  # the same sequences on every run: CI stays stable
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# How messages name a VM or an ISO: `VM web-1 (dd4ec5f8…)`; the groups are the name and the UUID's start.
VM, ISO = r"VM (?P<vm>\S+) \((?P<vm_start>[0-9a-f]{8})…\)", r"ISO (?P<iso>\S+) \((?P<iso_start>[0-9a-f]{8})…\)"
# The failures a user may meet here, each with the fact about the node it claims.
KNOWN_FAILURES = {
    "destroyed": re.compile(rf"cannot attach {ISO}: {VM} is Destroyed"),
    "full": re.compile(rf"cannot attach {ISO}: {VM} has no free CD-ROM"),
    "occupied": re.compile(
        rf"cannot attach {ISO}: CD-ROM (?P<cdrom>\w+) \(device \d\) of {VM} already holds ISO (?P<held>\w+)"
    ),
    "pinned elsewhere": re.compile(
        rf"{ISO} on {VM} is already attached in CD-ROM (?P<cdrom>\w+) \(device \d\), not in"
    ),
}


class Attachments(RuleBasedStateMachine):
    def __init__(self, ctl: SimCtl, host, names: dict[str, str]) -> None:
        super().__init__()
        self.ctl, self.host, self.uuid = ctl, host, names
        ctl.reset()
        ctl.config(jobSeconds=0.02)
        self.engine = engine_for(host)
        self.program: dict[str, dict[str, str]] = {}

    # -- the user's program ---------------------------------------------------------------------------------

    @rule(vm=st.sampled_from(VMS), iso=st.sampled_from(ISOS), pin=st.booleans())
    def declare(self, vm: str, iso: str, pin: bool) -> None:
        name = f"{vm}:{iso}"
        if name in self.program:
            return
        props = {"vm_uuid": self.uuid[vm], "iso_uuid": self.uuid[iso]}
        empty = [c["uuid"] for c in self.ctl.cdroms(self.uuid[vm]) if not c.get("isoUuid")]
        if pin and empty:
            props["cdrom_uuid"] = empty[-1]  # the highest empty slot: not the one ZStack would pick
        self.program[name] = props
        self.deploy()

    @precondition(lambda self: self.program)
    @rule(data=st.data())
    def remove(self, data) -> None:
        name = data.draw(st.sampled_from(sorted(self.program)))
        del self.program[name]
        self.deploy()

    @rule()
    def deploy_again(self) -> None:
        self.deploy()

    @rule()
    def refresh(self) -> None:
        self.engine.refresh().raise_on_error()
        assert disagreements(self.engine, self.ctl) == []

    # -- someone else, through the ZStack API ---------------------------------------------------------------

    @rule(vm=st.sampled_from(VMS), action=st.sampled_from(["start", "stop", "destroy", "recover"]))
    def change_vm_state(self, vm: str, action: str) -> None:
        vm_uuid = self.uuid[vm]
        if action == "destroy":
            self.ctl.zstack("DELETE", f"vm-instances/{vm_uuid}")
        else:
            self.ctl.zstack("PUT", f"vm-instances/{vm_uuid}/actions", json={f"{action}VmInstance": {}})
        # A refused transition (e.g. starting a Destroyed VM) changes nothing: the invariants still hold.

    @rule(vm=st.sampled_from(VMS), iso=st.sampled_from(ISOS))
    def detach_by_hand(self, vm: str, iso: str) -> None:
        self.ctl.zstack("DELETE", f"vm-instances/{self.uuid[vm]}/iso", params={"isoUuid": self.uuid[iso]})

    @rule(vm=st.sampled_from(VMS), iso=st.sampled_from(ISOS))
    def attach_by_hand(self, vm: str, iso: str) -> None:
        self.ctl.zstack("POST", f"vm-instances/{self.uuid[vm]}/iso/{self.uuid[iso]}")  # may be refused: fine

    # -- checks ---------------------------------------------------------------------------------------------

    def deploy(self) -> None:
        result = self.engine.up(self.program)
        for name, error in result.errors.items():
            assert isinstance(error, ProviderError), f"{name}: {error!r}"
            self.check_failure_is_true(error.message)
        for name, step in result.steps.items():
            if step.ok and step.kind != "delete":
                props = self.program[name]
                found = holders(self.ctl, props["vm_uuid"], props["iso_uuid"])
                assert [c["uuid"] for c in found] == [self.engine.resource(name).outputs["cdrom_uuid"]], name
                if "cdrom_uuid" in props:
                    assert found[0]["uuid"] == props["cdrom_uuid"]
            if step.ok and step.kind == "delete":
                assert self.engine.resource(name) is None
        if result.ok:
            assert sorted(self.engine.names()) == sorted(self.program)

    def check_failure_is_true(self, message: str) -> None:
        assert message.startswith(ERROR_PREFIX), message
        text = message[len(ERROR_PREFIX) :]
        kind, match = next(((k, m) for k, p in KNOWN_FAILURES.items() if (m := p.match(text))), (None, None))
        assert match is not None, f"unexpected failure: {message}"
        # The names stand for the VM and ISO they name, and the UUIDs' starts are theirs.
        vm, iso = self.uuid[match["vm"]], self.uuid[match["iso"]]
        assert (match["vm_start"], match["iso_start"]) == (vm[:8], iso[:8]), message
        if kind == "destroyed":
            assert self.ctl.vm_inventory(vm)["state"] == "Destroyed"
        elif kind == "full":
            assert all(c.get("isoUuid") for c in self.ctl.cdroms(vm))
            assert iso not in iso_slots(self.ctl, vm)
        elif kind == "occupied":
            assert iso_slots(self.ctl, vm).get(match["held"]) == match["cdrom"]
        else:
            assert iso_slots(self.ctl, vm).get(iso) == match["cdrom"]

    @invariant()
    def node_rules_hold(self) -> None:
        inventory = self.ctl.inventory()
        for vm in inventory["vmInstances"]:
            cdroms = [c for c in inventory["vmCdRoms"] if c["vmInstanceUuid"] == vm["uuid"]]
            isos = [c["isoUuid"] for c in cdroms if c.get("isoUuid")]
            assert len(isos) == len(set(isos)), f"an ISO twice on {vm['name']}"
            assert len(cdroms) <= 3
            assert all(isinstance(c.get("isoUuid"), (str, type(None))) for c in cdroms)  # one ISO per CD-ROM

    @invariant()
    def the_providers_read_agrees_with_the_node(self) -> None:
        for name in self.engine.names():
            res = self.engine.resource(name)
            new_id, outputs, _ = self.host.read(res.id, res.outputs, res.inputs)
            vm = self.ctl.vm_inventory(res.outputs["vm_uuid"])
            found = holders(self.ctl, res.outputs["vm_uuid"], res.outputs["iso_uuid"])
            if vm is None or vm["state"] == "Destroyed" or not found:
                assert new_id == "", f"{name}: read says present, the node says gone"
            else:
                assert new_id == res.id
                assert (outputs["cdrom_uuid"], outputs["device_id"]) == (found[0]["uuid"], found[0]["deviceId"])

    def teardown(self) -> None:
        # The host outlives this example's deployment: end it, so the next example starts from nothing.
        self.engine.destroy()


def test_random_sequences_keep_the_provider_and_the_node_in_agreement(sim, host):
    names = {name: sim.vm(name) for name in VMS} | {name: sim.image(name) for name in ISOS}
    run_state_machine_as_test(lambda: Attachments(sim, host, names), settings=PROFILE)


# -- a sequence the model does not generate: the same attachment under a new resource name -----------------


class Stack:
    """A stack's state across deployments, each run by a fresh provider host, as `pulumi up` runs them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.state: dict = {}
        self.log = ""

    def run(self, operation: str, resources: dict | None = None):
        with provider_host(self.url) as host:
            engine = engine_for(host)
            engine.state = dict(self.state)
            result = getattr(engine, operation)() if resources is None else getattr(engine, operation)(resources)
            self.state, self.log = dict(engine.state), host.stderr_text()
            self.engine = engine
        return result


def renamed(sim, simulator) -> tuple[Stack, dict[str, str]]:
    """Deploy `old`, then the same attachment renamed to `new` (no alias): new adopts it, old is deleted."""
    pair = {"vm_uuid": sim.vm("web-1"), "iso_uuid": sim.image("rescue.iso")}
    stack = Stack(simulator.url)
    stack.run("up", {"old": pair}).raise_on_error()
    result = stack.run("up", {"new": pair}).raise_on_error()
    assert result.kinds == {"new": "create", "old": "delete"}
    assert f"adopted {named('ISO', pair['iso_uuid'], 'rescue.iso')}" in stack.log
    return stack, pair


def test_a_renamed_attachment_stays_attached(sim, simulator):
    stack, pair = renamed(sim, simulator)
    assert len(holders(sim, pair["vm_uuid"], pair["iso_uuid"])) == 1
    assert "now managed by another IsoAttachment of this deployment" in stack.log
    assert stack.run("preview", {"new": pair}).kinds == {"new": "same"}
