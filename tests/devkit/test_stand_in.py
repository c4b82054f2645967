"""Proof that the engine stand-in (devkit) drives a dynamic provider as the Pulumi engine does.

Uses the throwaway ToyProvider (tests/devkit/toy_provider.py), which keeps "attachments" in a JSON file, so each
test can look behind the provider's back. One provider host is shared per module where that is safe; names
are unique per test so the shared store never mixes tests.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pulumi.runtime import settings as pulumi_settings

from devkit import (
    UNKNOWN,
    CheckFailed,
    Engine,
    HostStartError,
    ProviderError,
    ProviderHost,
    decode_provider,
    is_unknown,
    run_concurrently,
    run_program,
    serialize_provider,
    without_provider,
)
from tests.devkit.toy_provider import ToyProvider, load_store, save_store

PROGRAM = """
import pulumi
from tests.devkit.toy_provider import ToyAttachment

names = pulumi.Config("toy").require_object("names")
first = ToyAttachment(names[0], {"name": names[0], "size": 1})
# An input computed from another resource's output: unknown in a preview.
second_name = first.label.apply(lambda label: names[1] + "-" + str(label).lower())
second = ToyAttachment(names[1], {"name": second_name, "size": 2})
pulumi.export("first_size", first.size)
pulumi.export("second_label", second.label)
pulumi.export("token", pulumi.Output.secret("s3cr3t"))
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("toy") / "store.json"


@pytest.fixture(scope="module")
def host(store: Path):
    with ProviderHost(ToyProvider(), config={"toy:store": str(store), "toy:label": "blue"}) as h:
        yield h


@pytest.fixture()
def program(tmp_path: Path) -> Path:
    path = tmp_path / "__main__.py"
    path.write_text(PROGRAM)
    return path


# -- serialization ---------------------------------------------------------------------------------------


def test_serialized_provider_is_what_dynamic_resource_stores(program: Path) -> None:
    run = run_program(program, {"toy:names": ["p", "q"]})
    assert [r.provider_string for r in run.dynamic()] == [serialize_provider(ToyProvider())] * 2


def test_importable_provider_is_pickled_by_reference() -> None:
    raw = decode_provider(serialize_provider(ToyProvider()))
    assert b"tests.devkit.toy_provider" in raw and b"ToyProvider" in raw
    assert len(raw) < 200  # a reference, no bytecode


# -- the host ----------------------------------------------------------------------------------------------


def test_host_speaks_the_sdk_plugin_protocol(host: ProviderHost) -> None:
    assert host.plugin_info() == "0.1.0"
    assert host.alive and host.pid > 0
    assert host.startup_seconds is not None and host.startup_seconds < 15


def test_configure_answers_like_the_sdk_host(host: ProviderHost, store: Path) -> None:
    answer = host.configure({"toy:store": str(store), "toy:label": "blue"})
    assert answer == {"accept_secrets": False, "supports_preview": False}


def test_stack_config_reaches_the_provider_configure(host: ProviderHost) -> None:
    inputs, _ = host.check({}, {"name": "cfg"})
    _, outs = host.create(inputs)
    assert outs["label"] == "blue"


def test_secret_config_arrives_unwrapped(tmp_path: Path) -> None:
    config = {"toy:store": str(tmp_path / "s.json"), "toy:label": "hush"}
    with ProviderHost(ToyProvider(), config=config, secret_keys=["toy:label"]) as secret_host:
        _, outs = secret_host.create({"name": "sec"})
    assert outs["label"] == "hush"


def test_check_failures_come_back_as_property_and_reason(host: ProviderHost) -> None:
    inputs, failures = host.check({}, {"name": "Bad Name", "size": 0})
    assert failures == [
        ("name", "name must be lowercase letters and digits, got 'Bad Name'"),
        ("size", "size must be a number >= 1, got 0.0"),
    ]
    assert without_provider(inputs) == {"name": "Bad Name", "size": 0}


def test_preview_unknowns_reach_check_and_diff_as_unknown(host: ProviderHost) -> None:
    inputs, failures = host.check({}, {"name": UNKNOWN, "size": 1})
    assert failures == [] and is_unknown(inputs["name"])
    id_, outs = host.create({"name": "unk", "size": 1})
    # The toy replaces on an unknown name only if it received a pulumi.output.Unknown.
    outcome = host.diff(id_, outs, {"name": UNKNOWN, "size": 1})
    assert outcome.changes == "some" and outcome.replaces == ["name"]


def test_create_diff_read_delete_round_trip(host: ProviderHost, store: Path) -> None:
    inputs, _ = host.check({}, {"name": "trip", "size": 2})
    id_, outs = host.create(inputs)
    assert id_ == "att-trip"
    assert without_provider(outs) == {"name": "trip", "size": 2, "label": "blue", "pid": host.pid, "in_flight": 1}
    assert load_store(store)[id_] == {"name": "trip", "size": 2}

    assert host.diff(id_, outs, inputs, old_inputs=inputs).changes == "none"
    assert host.diff(id_, outs, {**inputs, "size": 3}).replaces == []

    read_id, read_outs, read_inputs = host.read(id_, outs, inputs)
    assert read_id == id_ and read_outs["size"] == 2
    assert without_provider(read_inputs) == {"name": "trip", "size": 2}

    host.delete(id_, outs)
    assert id_ not in load_store(store)
    assert host.read(id_, outs, inputs)[:2] == ("", {"__provider": outs["__provider"]})
    host.delete(id_, outs)  # idempotent


def test_update_returns_the_providers_outputs(host: ProviderHost, store: Path) -> None:
    id_, outs = host.create({"name": "upd", "size": 1})
    new_outs = host.update(id_, outs, {"name": "upd", "size": 5})
    assert new_outs["size"] == 5 and new_outs["label"] == "blue"
    assert load_store(store)[id_]["size"] == 5


def test_provider_exception_surfaces_as_provider_error_with_its_message(host: ProviderHost) -> None:
    with pytest.raises(ProviderError) as caught:
        host.create({"name": "boom", "explode": True})
    assert caught.value.code.name == "UNKNOWN"
    assert caught.value.message == "RuntimeError: toy create refused boom: explode was set"
    assert caught.value.details.startswith("Traceback")
    assert caught.value.method == "Create"


def test_read_without_properties_fails_like_pulumi_import(host: ProviderHost) -> None:
    with pytest.raises(ProviderError) as caught:
        host.read("att-any", {}, {})
    assert caught.value.message == "KeyError: '__provider'"


def test_call_timeout_raises_deadline_exceeded(host: ProviderHost) -> None:
    mark = host.mark()
    with pytest.raises(ProviderError) as caught:
        host.create({"name": "slow", "sleep": 1.0}, timeout=0.2)
    assert caught.value.code.name == "DEADLINE_EXCEEDED"
    # The host runs the call to its end: wait for it, or the module's next tests see one more create in flight.
    host.wait_for_stderr("toy: created att-slow", since=mark)


def test_provider_log_lines_are_captured_from_stderr(host: ProviderHost) -> None:
    mark = host.mark()
    host.create({"name": "logged"})
    assert "info: toy: created att-logged" in host.stderr_text(since=mark).splitlines()
    assert "att-logged" not in host.stderr_text(since=host.mark())


def test_host_serves_at_most_four_calls_at_once(host: ProviderHost) -> None:
    calls = [lambda i=i: host.create({"name": f"conc{i}", "sleep": 0.3}) for i in range(8)]
    results = run_concurrently(calls)
    assert all(not isinstance(r, BaseException) for r in results), results
    assert max(outs["in_flight"] for _, outs in results) == 4


def test_host_that_prints_no_port_raises_host_start_error() -> None:
    with pytest.raises(HostStartError, match="printed no port"):
        ProviderHost(python="/bin/false").start()


def test_provider_module_missing_from_cwd_fails_with_module_not_found(tmp_path: Path) -> None:
    # Pickled by reference: the host must import tests.devkit.toy_provider from its working directory.
    with ProviderHost(ToyProvider(), cwd=tmp_path, project="elsewhere") as h:
        with pytest.raises(ProviderError) as caught:
            h.check({}, {"name": "lost"})
    assert caught.value.message == "ModuleNotFoundError: No module named 'tests'"


def test_environment_adds_project_and_extras_and_removes_patterns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CANARY_SECRET", "leak")
    store = tmp_path / "env.json"
    with ProviderHost(ToyProvider(), env={"TOY_STORE": str(store)}, remove_env=["HARNESS_CANARY_*"]) as h:
        raw = Path(f"/proc/{h.pid}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        _, outs = h.create({"name": "envy"})  # no Configure sent: the store comes from TOY_STORE
    assert env["PULUMI_PROJECT"] == "zstack-iso"
    assert "HARNESS_CANARY_SECRET" not in env
    assert outs["label"] == "unlabelled" and "att-envy" in load_store(store)


def test_kill_fails_the_call_in_flight_and_restart_serves_again(tmp_path: Path) -> None:
    store = tmp_path / "crash.json"
    with ProviderHost(ToyProvider(), config={"toy:store": str(store)}) as h:
        first_pid = h.pid
        outcome: list[BaseException | tuple] = []
        worker = threading.Thread(
            target=lambda: outcome.extend(run_concurrently([lambda: h.create({"name": "crash", "sleep": 30})]))
        )
        worker.start()
        h.wait_for_stderr("toy: creating att-crash")
        h.kill()
        worker.join(10)
        assert isinstance(outcome[0], ProviderError) and outcome[0].code.name == "UNAVAILABLE"
        assert not h.alive and h.returncode == -9
        assert load_store(store) == {}  # killed before it wrote

        h.restart()
        assert h.pid != first_pid
        _, outs = h.create({"name": "crash"})
        assert outs["pid"] == h.pid


# -- the engine stand-in ---------------------------------------------------------------------------------------


def test_engine_lifecycle_preview_up_same_update_replace_refresh_destroy(host: ProviderHost, store: Path) -> None:
    engine = Engine(host, type_="pulumi-python:dynamic/toy:Attachment")
    declared = {"web": {"name": "life-web", "size": 1}, "db": {"name": "life-db", "size": 1}}

    preview = engine.preview(declared)
    assert preview.kinds == {"web": "create", "db": "create"}
    assert "att-life-web" not in load_store(store) and engine.state == {}

    assert engine.up(declared).raise_on_error().kinds == {"web": "create", "db": "create"}
    assert {"att-life-web", "att-life-db"} <= set(load_store(store))
    assert engine.resource("web").id == "att-life-web"
    assert engine.resource("web").urn == "urn:pulumi:dev::zstack-iso::pulumi-python:dynamic/toy:Attachment::web"

    mark = host.mark()
    assert engine.up(declared).kinds == {"web": "same", "db": "same"}
    assert "creating" not in host.stderr_text(since=mark)

    resized = {**declared, "db": {"name": "life-db", "size": 4}}
    assert engine.preview(resized).kinds == {"web": "same", "db": "update"}
    assert engine.up(resized).kinds == {"web": "same", "db": "update"}
    assert load_store(store)["att-life-db"]["size"] == 4

    renamed = {**resized, "web": {"name": "life-web2", "size": 1}}
    result = engine.up(renamed)
    assert result.kinds == {"web": "replace", "db": "same"}
    assert result.steps["web"].diff.delete_before_replace is False
    assert "att-life-web" not in load_store(store) and engine.resource("web").id == "att-life-web2"

    store_now = load_store(store)
    del store_now["att-life-db"]  # detached out of band
    save_store(store, store_now)
    mark = host.mark()
    assert engine.preview(renamed).kinds == {"web": "same", "db": "replace"}
    assert "warning: toy: attachment att-life-db vanished outside Pulumi" in host.stderr_text(since=mark)
    refreshed = engine.refresh()
    assert refreshed.kinds == {"web": "same", "db": "delete"}
    assert engine.names() == ["web"]

    assert engine.destroy().kinds == {"web": "delete"}
    assert engine.state == {} and "att-life-web2" not in load_store(store)


def test_engine_delete_before_replace_deletes_first(host: ProviderHost, store: Path) -> None:
    engine = Engine(host)
    engine.up({"a": {"name": "dbr-one", "dbr": True}}).raise_on_error()
    result = engine.up({"a": {"name": "dbr-two", "dbr": True}})
    assert result.kinds == {"a": "replace"} and result.steps["a"].diff.delete_before_replace
    assert "att-dbr-one" not in load_store(store) and "att-dbr-two" in load_store(store)


def test_engine_removes_undeclared_resources(host: ProviderHost, store: Path) -> None:
    engine = Engine(host)
    engine.up({"keep": {"name": "rm-keep"}, "drop": {"name": "rm-drop"}}).raise_on_error()
    assert engine.up({"keep": {"name": "rm-keep"}}).kinds == {"keep": "same", "drop": "delete"}
    assert engine.names() == ["keep"] and "att-rm-drop" not in load_store(store)


def test_engine_failed_step_keeps_old_state_and_skips_deletions(host: ProviderHost, store: Path) -> None:
    engine = Engine(host)
    engine.up({"ok": {"name": "fail-ok"}, "old": {"name": "fail-old"}}).raise_on_error()
    result = engine.up({"ok": {"name": "fail-ok", "size": 2}, "bad": {"name": "fail-bad", "explode": True}})
    assert isinstance(result.errors["bad"], ProviderError)
    assert result.errors["bad"].message == "RuntimeError: toy create refused fail-bad: explode was set"
    assert result.kinds["ok"] == "update" and result.steps["ok"].ok
    assert result.steps["old"].skipped and not result.ok
    assert engine.names() == ["ok", "old"] and "att-fail-old" in load_store(store)


def test_engine_reports_check_failures_without_creating(host: ProviderHost, store: Path) -> None:
    result = Engine(host).up({"x": {"name": "NOPE"}})
    assert isinstance(result.errors["x"], CheckFailed)
    assert result.errors["x"].failures == [("name", "name must be lowercase letters and digits, got 'NOPE'")]
    assert "att-NOPE" not in load_store(store)


def test_engine_compares_inputs_itself_when_diff_is_unknown(host: ProviderHost) -> None:
    engine = Engine(host)
    engine.up({"o": {"name": "opaque", "opaque": True}}).raise_on_error()
    assert engine.up({"o": {"name": "opaque", "opaque": True}}).kinds == {"o": "same"}
    result = engine.up({"o": {"name": "opaque", "opaque": True, "size": 2}})
    assert result.kinds == {"o": "update"} and result.steps["o"].diff.changes == "unknown"


def test_engine_parallel_knob_bounds_concurrency(host: ProviderHost) -> None:
    declared = {f"s{i}": {"name": f"serial{i}", "sleep": 0.05} for i in range(3)}
    result = Engine(host, parallel=1).up(declared).raise_on_error()
    assert {step.outputs["in_flight"] for step in result.steps.values()} == {1}
    declared = {f"p{i}": {"name": f"par{i}", "sleep": 0.3} for i in range(4)}
    result = Engine(host, parallel=4).up(declared).raise_on_error()
    assert max(step.outputs["in_flight"] for step in result.steps.values()) == 4


# -- programs under mocks ----------------------------------------------------------------------------------


def test_run_program_records_registrations_and_exports(program: Path) -> None:
    run = run_program(program, {"toy:names": ["alpha", "beta"]})
    assert [(r.typ, r.name, r.props) for r in run.registrations] == [
        ("pulumi-python:dynamic/toy:Attachment", "alpha", {"name": "alpha", "size": 1}),
        ("pulumi-python:dynamic/toy:Attachment", "beta", {"name": "beta-none", "size": 2}),
    ]
    assert [r.id for r in run.registrations] == ["alpha-id", "beta-id"]
    assert run.exports == {"first_size": 1, "token": "s3cr3t"}
    assert run.secret_exports == {"token"}
    assert pulumi_settings.get_root_resource() is None  # nothing leaks into the caller


def test_run_program_preview_passes_unknown_inputs(program: Path) -> None:
    run = run_program(program, {"toy:names": ["alpha", "beta"]}, preview=True)
    beta = run.by_name("beta")
    assert is_unknown(beta.inputs["name"]) and beta.id == ""
    assert is_unknown(run.exports["second_label"])


def test_captured_provider_replays_into_a_fresh_host(program: Path, host: ProviderHost, store: Path) -> None:
    engine = Engine(host, type_="pulumi-python:dynamic/toy:Attachment")
    planned = run_program(program, {"toy:names": ["replay-a", "replay-b"]}, preview=True)
    assert engine.preview(planned.declared()).kinds == {"replay-a": "create", "replay-b": "create"}
    run = run_program(program, {"toy:names": ["replay-a", "replay-b"]})
    assert engine.up(run.declared()).raise_on_error().kinds == {"replay-a": "create", "replay-b": "create"}
    assert {"att-replay-a", "att-replay-b-none"} <= set(load_store(store))


def test_run_program_raises_the_programs_error(tmp_path: Path) -> None:
    path = tmp_path / "__main__.py"
    path.write_text("import pulumi\npulumi.Config('toy').require('missing')\n")
    with pytest.raises(Exception, match="Missing required configuration variable 'toy:missing'"):
        run_program(path)


def test_run_program_stores_structured_config_as_json(tmp_path: Path) -> None:
    path = tmp_path / "__main__.py"
    path.write_text("import pulumi\npulumi.export('raw', pulumi.Config().get('things'))\n")
    run = run_program(path, {"things": [1, {"a": 2}]}, project="demo")
    assert json.loads(run.exports["raw"]) == [1, {"a": 2}]


def test_run_concurrently_returns_exceptions_in_place() -> None:
    def fail() -> None:
        raise ValueError("no")

    started = time.perf_counter()
    results = run_concurrently([lambda: 1, fail, lambda: 3])
    assert results[0] == 1 and isinstance(results[1], ValueError) and results[2] == 3
    assert time.perf_counter() - started < 5
    with pytest.raises(ValueError):
        run_concurrently([fail], return_exceptions=False)
