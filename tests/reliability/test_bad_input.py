"""Every malformed or impossible input, the exact message a user gets for it, and proof that nothing was
written to the node (no POST, PUT or DELETE other than a login in the simulator's journal)."""

from __future__ import annotations

import pytest

from devkit import CheckFailed, ProviderError
from tests.support import ERROR_PREFIX, engine_for, iso_slots, named, provider_host, writes

# The settings of this module's provider host (the `host` fixture in tests/conftest.py).
HOST_SETTINGS = {"jobTimeout": "2"}

HINT = "a ZStack UUID: 32 hexadecimal characters without dashes, e.g. 7105b03e09794680b7ba1027f812c987"
A_UUID = "0123456789abcdef0123456789abcdef"


# -- malformed: refused by Check, before any call to the node ------------------------------------------------

MALFORMED = [
    # (case, inputs with VM/ISO placeholders, property, exact reason)
    ("missing vm_uuid", {"iso_uuid": "ISO"}, "vm_uuid", f"vm_uuid is required: {HINT}"),
    ("missing iso_uuid", {"vm_uuid": "VM"}, "iso_uuid", f"iso_uuid is required: {HINT}"),
    ("vm name instead of uuid", {"vm_uuid": "web-1", "iso_uuid": "ISO"}, "vm_uuid",
     f"vm_uuid must be {HINT}; got 'web-1'"),
    ("iso name instead of uuid", {"vm_uuid": "VM", "iso_uuid": "rescue.iso"}, "iso_uuid",
     f"iso_uuid must be {HINT}; got 'rescue.iso'"),
    ("empty vm_uuid", {"vm_uuid": "", "iso_uuid": "ISO"}, "vm_uuid", f"vm_uuid must be {HINT}; got ''"),
    ("blank iso_uuid", {"vm_uuid": "VM", "iso_uuid": "   "}, "iso_uuid", f"iso_uuid must be {HINT}; got '   '"),
    ("dashed uuid", {"vm_uuid": "VM", "iso_uuid": "7105b03e-0979-4680-b7ba-1027f812c987"}, "iso_uuid",
     f"iso_uuid must be {HINT}; got '7105b03e-0979-4680-b7ba-1027f812c987'"),
    ("31 characters", {"vm_uuid": A_UUID[:31], "iso_uuid": "ISO"}, "vm_uuid",
     f"vm_uuid must be {HINT}; got '{A_UUID[:31]}'"),
    ("33 characters", {"vm_uuid": A_UUID + "0", "iso_uuid": "ISO"}, "vm_uuid",
     f"vm_uuid must be {HINT}; got '{A_UUID}0'"),
    ("not hexadecimal", {"vm_uuid": "g" * 32, "iso_uuid": "ISO"}, "vm_uuid",
     f"vm_uuid must be {HINT}; got '{'g' * 32}'"),
    # Pulumi sends every number as a float: the message shows the number as the program wrote it.
    ("number", {"vm_uuid": 42, "iso_uuid": "ISO"}, "vm_uuid", f"vm_uuid must be a string, {HINT}; got 42"),
    ("fraction", {"vm_uuid": 4.5, "iso_uuid": "ISO"}, "vm_uuid", f"vm_uuid must be a string, {HINT}; got 4.5"),
    ("boolean", {"vm_uuid": "VM", "iso_uuid": True}, "iso_uuid", f"iso_uuid must be a string, {HINT}; got True"),
    ("list", {"vm_uuid": ["web-1"], "iso_uuid": "ISO"}, "vm_uuid",
     f"vm_uuid must be a string, {HINT}; got ['web-1']"),
    ("object", {"vm_uuid": "VM", "iso_uuid": {"uuid": "x"}}, "iso_uuid",
     f"iso_uuid must be a string, {HINT}; got {{'uuid': 'x'}}"),
    ("empty cdrom_uuid", {"vm_uuid": "VM", "iso_uuid": "ISO", "cdrom_uuid": ""}, "cdrom_uuid",
     f"cdrom_uuid must be {HINT}; got '' (omit cdrom_uuid to let ZStack pick an empty CD-ROM)"),
    ("cdrom device number", {"vm_uuid": "VM", "iso_uuid": "ISO", "cdrom_uuid": 0}, "cdrom_uuid",
     f"cdrom_uuid must be a string, {HINT}; got 0"),
]  # fmt: skip


def _fill(value, vm: str, iso: str):
    return {"VM": vm, "ISO": iso}.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize(("case", "inputs", "prop", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_is_refused_at_check_with_the_exact_reason_and_nothing_written(
    sim, engine, case, inputs, prop, reason
):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    props = {key: _fill(value, vm, iso) for key, value in inputs.items()}
    for result in (engine.preview({"att": props}), engine.up({"att": props})):
        error = result.errors["att"]
        assert isinstance(error, CheckFailed)
        assert error.failures == [(prop, reason)]
    assert engine.names() == []
    assert writes(sim) == []


def test_uppercase_and_padded_uuids_are_accepted_and_stored_in_canonical_form(sim, engine):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    engine.up({"att": {"vm_uuid": vm.upper(), "iso_uuid": f" {iso} "}}).raise_on_error()
    state = engine.resource("att")
    assert (state.inputs["vm_uuid"], state.inputs["iso_uuid"]) == (vm, iso)
    assert state.id == f"{vm}/{iso}"
    assert iso in iso_slots(sim, vm)


# -- impossible: well-formed, refused by Create after reading the node, before any write --------------------


def _describe(sim, vm: str) -> str:
    return ", ".join(f"{c['uuid']} (device {c['deviceId']}, {c.get('isoUuid') or 'empty'})" for c in sim.cdroms(vm))


def _attach(sim, vm: str, iso: str, cdrom: str | None = None) -> None:
    body = {"systemTags": [f"cdromUuid::{cdrom}"]} if cdrom else None
    status, answer = sim.zstack("POST", f"vm-instances/{vm}/iso/{iso}", json=body)
    assert status == 200, answer


def impossible_cases(sim) -> dict[str, tuple[dict[str, str], str]]:
    """case -> (inputs, exact message), arranging the node where a case needs it."""
    web1, web2, legacy, old = sim.vm("web-1"), sim.vm("web-2"), sim.vm("legacy-1"), sim.vm("old-1")
    rescue, ubuntu, virtio = (
        sim.image("rescue.iso"),
        sim.image("ubuntu-22.04-server.iso"),
        sim.image("virtio-win-0.1.240.iso"),
    )
    disabled, downloading = sim.image("drivers-disabled.iso"), sim.image("installer-downloading.iso")
    root = sim.image("centos-7-root")
    web1_cdroms = [c["uuid"] for c in sim.cdroms(web1)]
    web2_cdrom = sim.cdroms(web2)[0]["uuid"]
    no_vm = "ee" * 16
    # How messages name what they are about: the name a reviewer knows, and the start of its UUID.
    vm_web1, vm_web2, vm_legacy, vm_old = (
        named("VM", web1, "web-1"),
        named("VM", web2, "web-2"),
        named("VM", legacy, "legacy-1"),
        named("VM", old, "old-1"),
    )
    iso_rescue = named("ISO", rescue, "rescue.iso")
    return {
        "unknown VM": (
            {"vm_uuid": no_vm, "iso_uuid": rescue},
            f"cannot attach {iso_rescue}: VM {no_vm} does not exist; check vm_uuid (recover a Destroyed VM first, "
            "or remove this IsoAttachment)",
        ),
        "VM and ISO swapped": (
            {"vm_uuid": rescue, "iso_uuid": web1},
            f"cannot attach ISO {web1}: VM {rescue} does not exist; check vm_uuid (recover a Destroyed VM first, "
            "or remove this IsoAttachment)",
        ),
        "Destroyed VM": (
            {"vm_uuid": old, "iso_uuid": rescue},
            f"cannot attach {iso_rescue}: {vm_old} is Destroyed; check vm_uuid (recover a Destroyed VM first, "
            "or remove this IsoAttachment)",
        ),
        "unknown ISO": (
            {"vm_uuid": web1, "iso_uuid": "ff" * 16},
            f"cannot attach ISO {'ff' * 16} to {vm_web1}: no image with that UUID exists; check iso_uuid",
        ),
        "image that is not an ISO": (
            {"vm_uuid": web1, "iso_uuid": root},
            f"cannot attach {named('image', root, 'centos-7-root')} to {vm_web1}: it is a RootVolumeTemplate, not "
            "an ISO; iso_uuid must name an image whose media type is ISO",
        ),
        "disabled ISO": (
            {"vm_uuid": web1, "iso_uuid": disabled},
            f"cannot attach {named('ISO', disabled, 'drivers-disabled.iso')} to {vm_web1}: the image is Disabled "
            "and Ready; it must be Enabled and Ready (enable it, or wait for its download to finish)",
        ),
        "ISO still downloading": (
            {"vm_uuid": web1, "iso_uuid": downloading},
            f"cannot attach {named('ISO', downloading, 'installer-downloading.iso')} to {vm_web1}: the image is "
            "Enabled and Downloading; it must be Enabled and Ready (enable it, or wait for its download to finish)",
        ),
        "unknown CD-ROM": (
            {"vm_uuid": web1, "iso_uuid": rescue, "cdrom_uuid": "dd" * 16},
            f"cannot attach {iso_rescue}: CD-ROM {'dd' * 16} is not a CD-ROM of {vm_web1} (its CD-ROMs: "
            f"{_describe(sim, web1)}); set cdrom_uuid to one of them or omit it",
        ),
        "CD-ROM of another VM": (
            {"vm_uuid": web1, "iso_uuid": rescue, "cdrom_uuid": web2_cdrom},
            f"cannot attach {iso_rescue}: CD-ROM {web2_cdrom} is not a CD-ROM of {vm_web1} (its CD-ROMs: "
            f"{_describe(sim, web1)}); set cdrom_uuid to one of them or omit it",
        ),
        "CD-ROM already holding an ISO": (
            {"vm_uuid": web1, "iso_uuid": rescue, "cdrom_uuid": web1_cdroms[1]},
            f"cannot attach {iso_rescue}: CD-ROM {web1_cdroms[1]} (device 1) of {vm_web1} already holds ISO "
            f"{virtio}; detach that ISO or pin another CD-ROM",
        ),
        "ISO already attached in another CD-ROM than pinned": (
            {"vm_uuid": web1, "iso_uuid": ubuntu, "cdrom_uuid": web1_cdroms[2]},
            f"{named('ISO', ubuntu, 'ubuntu-22.04-server.iso')} on {vm_web1} is already attached in CD-ROM "
            f"{web1_cdroms[0]} (device 0), not in the requested CD-ROM {web1_cdroms[2]}; ZStack allows an ISO once "
            f"per VM: set cdrom_uuid to {web1_cdroms[0]}, or detach the ISO first",
        ),
        "VM with every CD-ROM full": (
            {"vm_uuid": web2, "iso_uuid": rescue},
            f"cannot attach {iso_rescue}: {vm_web2} has no free CD-ROM (all 1 hold ISOs: {web2_cdrom} (device 0, "
            f"{ubuntu})); detach one of them, or add a CD-ROM (the VM must be Stopped; at most 3)",
        ),
        "VM with no CD-ROM": (
            {"vm_uuid": legacy, "iso_uuid": rescue},
            f"cannot attach {iso_rescue}: {vm_legacy} has no CD-ROM; add one with CreateVmCdRom (the VM must be "
            "Stopped; at most 3 per VM)",
        ),
    }


IMPOSSIBLE = [
    "unknown VM",
    "VM and ISO swapped",
    "Destroyed VM",
    "unknown ISO",
    "image that is not an ISO",
    "disabled ISO",
    "ISO still downloading",
    "unknown CD-ROM",
    "CD-ROM of another VM",
    "CD-ROM already holding an ISO",
    "ISO already attached in another CD-ROM than pinned",
    "VM with every CD-ROM full",
    "VM with no CD-ROM",
]


@pytest.mark.parametrize("case", IMPOSSIBLE)
def test_an_impossible_attachment_fails_with_the_exact_message_and_nothing_written(sim, engine, case):
    web1, web2 = sim.vm("web-1"), sim.vm("web-2")
    # The node as a user might have left it: an ISO in web-1's first two CD-ROMs, web-2's only CD-ROM full.
    _attach(sim, web1, sim.image("ubuntu-22.04-server.iso"))
    _attach(sim, web1, sim.image("virtio-win-0.1.240.iso"))
    _attach(sim, web2, sim.image("ubuntu-22.04-server.iso"))
    inputs, message = impossible_cases(sim)[case]
    before = sim.inventory()["vmCdRoms"]
    sim.clear_journal()

    result = engine.up({"att": inputs})

    error = result.errors["att"]
    assert isinstance(error, ProviderError)
    assert error.message == ERROR_PREFIX + message
    assert engine.names() == []
    assert writes(sim) == []
    assert sim.inventory()["vmCdRoms"] == before


@pytest.mark.parametrize("state", ["Crashed", "Unknown"])
def test_a_vm_in_a_state_that_never_allows_iso_operations_is_refused_by_name(sim, engine, state):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    sim.hold_state(vm, state, 5)
    sim.clear_journal()
    error = engine.up({"att": {"vm_uuid": vm, "iso_uuid": iso}}).errors["att"]
    assert error.message == (
        f"{ERROR_PREFIX}cannot attach ISO {iso}: {named('VM', vm, 'web-1')} is in state {state}, and ZStack "
        "attaches or detaches ISOs only in Running, Stopped or Paused; bring the VM back to one of them and retry"
    )
    assert writes(sim) == []


def test_the_same_attachment_declared_twice_fails_for_one_of_them_and_attaches_once(sim, engine):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    result = engine.up({"a": {"vm_uuid": vm, "iso_uuid": iso}, "b": {"vm_uuid": vm, "iso_uuid": iso}})
    assert len(result.errors) == 1
    ((loser, error),) = result.errors.items()
    assert error.message == (
        f"{ERROR_PREFIX}{named('ISO', iso, 'rescue.iso')} on {named('VM', vm, 'web-1')} is declared by two "
        "IsoAttachment resources in this deployment; an ISO can be attached to a VM only once: remove the duplicate "
        "declaration"
    )
    assert [c["uuid"] for c in sim.cdroms(vm) if c.get("isoUuid") == iso] == [sim.cdroms(vm)[0]["uuid"]]


@pytest.mark.parametrize("bad_id", ["", "web-1/rescue.iso", A_UUID, f"{A_UUID}/{A_UUID}/{A_UUID}", f"{A_UUID}/"])
def test_a_read_by_a_malformed_id_says_what_an_id_looks_like(sim, host, bad_id):
    # What `IsoAttachment.get(name, id)` sends: no stored outputs, only the provider.
    with pytest.raises(ProviderError) as failure:
        host.read(bad_id, {"__provider": host.provider_string})
    assert failure.value.message == (
        f"{ERROR_PREFIX}invalid IsoAttachment ID {bad_id!r}: expected '<vm_uuid>/<iso_uuid>', two ZStack UUIDs "
        "(32 hexadecimal characters each)"
    )
    assert writes(sim) == []


# -- malformed provider configuration: Check still validates inputs, the first call that needs the node fails --

NOT_CONFIGURED = f"{ERROR_PREFIX}ZStack provider is not configured: "
BAD_CONFIG = [
    # (case, stack config changes ("" removes the key), exact message after NOT_CONFIGURED)
    ("job timeout not a number", {"jobTimeout": "ten"},
     "zstack:jobTimeout / ZSTACK_JOB_TIMEOUT must be a positive number of seconds, got 'ten'"),
    ("job timeout zero", {"jobTimeout": "0"},
     "zstack:jobTimeout / ZSTACK_JOB_TIMEOUT must be a positive number of seconds, got '0'"),
    ("request timeout negative", {"requestTimeout": "-1"},
     "zstack:requestTimeout / ZSTACK_REQUEST_TIMEOUT must be a positive number of seconds, got '-1'"),
    ("poll interval not a number", {"pollInterval": "often"},
     "zstack:pollInterval / ZSTACK_POLL_INTERVAL must be a positive number of seconds, got 'often'"),
    ("endpoint without a scheme", {"endpoint": "zstack.example.com:8080"},
     "zstack:endpoint / ZSTACK_ENDPOINT must be an http(s) URL such as https://zstack.example.com:8080, "
     "got 'zstack.example.com:8080'"),
    ("port not a number", {"endpoint": "", "host": "127.0.0.1", "port": "http"},
     "zstack:port / ZSTACK_PORT must be a TCP port number, got 'http'"),
    ("port out of range", {"endpoint": "", "host": "127.0.0.1", "port": "70000"},
     "zstack:port / ZSTACK_PORT must be a TCP port number, got '70000'"),
    ("no endpoint or host", {"endpoint": ""},
     "no ZStack management node configured: set `pulumi config set zstack:host <host>` (or ZSTACK_HOST), or "
     "zstack:endpoint / ZSTACK_ENDPOINT with a full URL"),
    ("account without password", {"accountPassword": ""},
     "incomplete ZStack credentials for {url}: missing zstack:accountPassword / ZSTACK_ACCOUNT_PASSWORD"),
    ("AccessKey id without secret", {"accountName": "", "accountPassword": "", "accessKeyId": "SIMAKD4D6DC03FBEA506"},
     "incomplete ZStack credentials for {url}: missing zstack:accessKeySecret / ZSTACK_ACCESS_KEY_SECRET"),
    ("account and AccessKey both", {"accessKeyId": "SIMAKD4D6DC03FBEA506", "accessKeySecret": "s"},
     "both an account (zstack:accountName/accountPassword) and an AccessKey (zstack:accessKeyId/accessKeySecret) "
     "are configured; they are mutually exclusive: remove one pair from the stack config or the environment"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "changes", "message"), BAD_CONFIG, ids=[c[0] for c in BAD_CONFIG])
def test_a_malformed_configuration_fails_the_first_call_with_the_exact_message_and_nothing_written(
    sim, simulator, case, changes, message
):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    with provider_host(simulator.url, **changes) as bad_host:
        engine = engine_for(bad_host)
        assert bad_host.check({}, {"vm_uuid": vm, "iso_uuid": iso})[1] == []  # inputs are still validated
        error = engine.up({"att": {"vm_uuid": vm, "iso_uuid": iso}}).errors["att"]
    assert error.message == NOT_CONFIGURED + message.replace("{url}", simulator.url)
    assert sim.journal()["counters"]["requests"] == 0


def test_an_unknown_log_level_is_ignored_with_a_warning_instead_of_failing_the_deployment(sim, simulator):
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    with provider_host(simulator.url, env={"ZSTACK_ISO_LOG_LEVEL": "loud"}) as chatty:
        engine = engine_for(chatty)
        engine.up({"att": {"vm_uuid": vm, "iso_uuid": iso}}).raise_on_error()
        engine.destroy().raise_on_error()
        assert "ZSTACK_ISO_LOG_LEVEL='LOUD' is not DEBUG, INFO, WARNING or ERROR; ignored" in chatty.stderr_text()
