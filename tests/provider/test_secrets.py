"""Canary credentials never reach the state (`__provider` decoded), the outputs, the provider host's log
(even at DEBUG) or an error message, whether things go right or wrong."""

from __future__ import annotations

import hashlib
import json

import pytest

from devkit import PROJECT_ROOT, Engine, ProviderError, ProviderHost, decode_provider, run_program
from tests.support import CANARY_KEY_SECRET, CANARY_PASSWORD, canary_secrets

TYPE = "pulumi-python:dynamic/zstack:IsoAttachment"
PASSWORD, KEY_SECRET = CANARY_PASSWORD, CANARY_KEY_SECRET


def assert_clean(text: str, node) -> None:
    leaked = [secret for secret in canary_secrets(node) if secret in text]
    assert not leaked, f"secrets leaked: {leaked}"


def account_config(url: str, password: str = PASSWORD) -> dict[str, str]:
    return {"zstack:endpoint": url, "zstack:accountName": "admin", "zstack:accountPassword": password}


def access_key_config(url: str, key_id: str) -> dict[str, str]:
    return {"zstack:endpoint": url, "zstack:accessKeyId": key_id, "zstack:accessKeySecret": KEY_SECRET}


@pytest.mark.parametrize("mode", ["account", "access key"])
def test_no_secret_in_the_state_outputs_or_debug_log_of_a_whole_life(canary_node, canary_ctl, monkeypatch, mode):
    for name in ("ZSTACK_ENDPOINT", "ZSTACK_ACCOUNT_NAME", "ZSTACK_ACCOUNT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    config = (
        account_config(canary_node.url)
        if mode == "account"
        else access_key_config(canary_node.url, canary_ctl.access_key[0])
    )
    secret_keys = ["zstack:accountPassword", "zstack:accessKeySecret"]
    run = run_program(PROJECT_ROOT / "__main__.py", config, secret_keys=secret_keys)
    provider_string = run.dynamic()[0].provider_string
    pickled = decode_provider(provider_string)
    assert len(pickled) < 200  # the class, by reference, and nothing else
    assert_clean(pickled.decode("latin-1"), canary_node)

    with ProviderHost(
        provider_string, config=config, secret_keys=secret_keys, env={"ZSTACK_ISO_LOG_LEVEL": "DEBUG"}
    ) as host:
        engine = Engine(host, type_=TYPE)
        up = engine.up(run.declared()).raise_on_error()
        canary_ctl.expire_sessions()  # the next calls log in again: new sessions to keep out of the log
        engine.preview(run.declared()).raise_on_error()
        engine.refresh().raise_on_error()
        engine.destroy().raise_on_error()
        log = host.stderr_text()
    assert "DEBUG zstack_iso" in log  # the debug log was really on
    outputs = json.dumps([step.outputs for step in up.steps.values()])
    assert_clean(outputs, canary_node)
    assert_clean(json.dumps(run.exports, default=str), canary_node)
    assert_clean(log, canary_node)


def test_a_wrong_password_error_carries_its_code_but_not_the_password(canary_node, canary_ctl):
    wrong = "Canary-Wrong-0cc175b9c0f1b6a8"
    config = account_config(canary_node.url, password=wrong)
    with ProviderHost(
        _provider_string(),
        config=config,
        secret_keys=["zstack:accountPassword"],
        env={"ZSTACK_ISO_LOG_LEVEL": "DEBUG"},
    ) as host:
        with pytest.raises(ProviderError) as failure:
            host.read(
                f"{canary_ctl.vm('web-1')}/{canary_ctl.image('rescue.iso')}",
                {"vm_uuid": canary_ctl.vm("web-1"), "iso_uuid": canary_ctl.image("rescue.iso")},
            )
        log = host.stderr_text()
    message = failure.value.details
    assert "ID.1000" in message
    for text in (message, log):
        assert wrong not in text and hashlib.sha512(wrong.encode()).hexdigest() not in text
        assert_clean(text, canary_node)


def _provider_string() -> str:
    from devkit import serialize_provider
    from zstack_iso.provider import IsoAttachmentProvider

    return serialize_provider(IsoAttachmentProvider())
