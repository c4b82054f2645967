"""Credentials never leak, whatever fails; TLS verification is on by default.

Canary credentials (a password and an AccessKey secret nobody would type) are seeded into a simulator; every
scenario runs a whole life (up, preview, refresh, destroy) with the provider's DEBUG log on, and then greps
the state (`__provider` decoded), the outputs, the provider host's log and every error message for them,
for the password's SHA-512 (what the node accepts) and for every session UUID the node handed out.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from devkit import SimCtl, decode_provider
from tests.support import (
    CANARY_KEY_SECRET,
    CANARY_PASSWORD,
    ERROR_PREFIX,
    canary_secrets,
    engine_for,
    holders,
    provider_host,
)

PASSWORD, KEY_SECRET = CANARY_PASSWORD, CANARY_KEY_SECRET
DEBUG = {"ZSTACK_ISO_LOG_LEVEL": "DEBUG"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def account(url: str, **extra: str) -> dict[str, str]:
    return {"endpoint": url, "accountName": "admin", "accountPassword": PASSWORD, **extra}


def access_key(url: str, key_id: str, secret: str = KEY_SECRET) -> dict[str, str]:
    return {"endpoint": url, "accountName": "", "accountPassword": "", "accessKeyId": key_id, "accessKeySecret": secret}


# scenario -> (config builder, faults to inject, whether the up is expected to succeed)
SCENARIOS: dict[str, tuple[Any, list[dict[str, Any]], bool]] = {
    "a whole life with an account": (lambda url, ctl: account(url), [], True),
    "a whole life with an AccessKey": (lambda url, ctl: access_key(url, ctl.access_key[0]), [], True),
    "a wrong AccessKey secret": (
        lambda url, ctl: access_key(url, ctl.access_key[0], "Canary-Wrong-Sk-9a1158"),
        [],
        False,
    ),
    "the login answered 500": (
        lambda url, ctl: account(url),
        [{"method": "PUT", "pathRegex": "/accounts/login", "action": "http_status", "status": 500, "times": None}],
        False,
    ),
    "the login failed on the node": (
        lambda url, ctl: account(url),
        [{"method": "PUT", "pathRegex": "/accounts/login", "action": "job_error", "times": None}],
        False,
    ),
    "the attach job failed": (
        lambda url, ctl: account(url),
        [{"method": "POST", "pathRegex": "/iso/", "action": "job_error", "times": None}],
        False,
    ),
    "the attach answer was lost and its job expired": (
        lambda url, ctl: account(url),
        [
            {"method": "POST", "pathRegex": "/iso/", "action": "drop_after_accept"},
            {"pathRegex": "/api-jobs/", "action": "expire_job"},
        ],
        True,
    ),
    "the node is unreachable": (lambda url, ctl: account(f"http://127.0.0.1:{free_port()}"), [], False),
    "credentials inside the endpoint URL": (
        lambda url, ctl: account(url.replace("http://", f"http://admin:{PASSWORD}@")),
        [],
        False,
    ),
    "credentials inside an endpoint URL of the wrong scheme": (
        lambda url, ctl: account(url.replace("http://", f"ftp://admin:{PASSWORD}@")),
        [],
        False,
    ),
    "a password without an account name": (lambda url, ctl: account(url, accountName=""), [], False),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_credential_reaches_the_state_outputs_log_or_errors(canary_node, canary_ctl, scenario):
    build, faults, succeeds = SCENARIOS[scenario]
    vm, iso = canary_ctl.vm("web-1"), canary_ctl.image("rescue.iso")
    declared = {"att": {"vm_uuid": vm, "iso_uuid": iso}}
    for fault in faults:
        canary_ctl.fault(**fault)
    texts: list[str] = []
    with provider_host(canary_node.url, env=DEBUG, **build(canary_node.url, canary_ctl)) as host:
        texts.append(decode_provider(host.provider_string).decode("latin-1"))
        engine = engine_for(host)
        up = engine.up(declared)
        assert up.ok is succeeds, up.errors
        canary_ctl.expire_sessions()  # every next call logs in again: one more session UUID to keep out of the log
        runs = [up, engine.preview(declared), engine.refresh(), engine.destroy()]
        log = host.stderr_text() + host.stdout_text()
    assert "DEBUG zstack_iso" in log or not succeeds  # the debug log was really on
    texts.append(log)
    for run in runs:
        texts.append(json.dumps([step.outputs for step in run.steps.values()], default=str))
        texts.extend(f"{error}\n{getattr(error, 'details', '')}" for error in run.errors.values())
    leaked = [secret for secret in canary_secrets(canary_node) for text in texts if secret in text]
    assert leaked == []


def test_an_endpoint_with_credentials_is_refused_without_echoing_them(canary_node, canary_ctl):
    vm, iso = canary_ctl.vm("web-1"), canary_ctl.image("rescue.iso")
    url = canary_node.url.replace("http://", f"ftp://admin:{PASSWORD}@")
    with provider_host(canary_node.url, **account(url)) as host:
        error = engine_for(host).up({"att": {"vm_uuid": vm, "iso_uuid": iso}}).errors["att"]
    assert error.message == (
        f"{ERROR_PREFIX}ZStack provider is not configured: zstack:endpoint / ZSTACK_ENDPOINT must be an http(s) URL "
        "such as https://zstack.example.com:8080, got 'ftp://***@127.0.0.1:"
        f"{canary_node.port}'"
    )


# -- TLS --------------------------------------------------------------------------------------------------------


def attach_over_tls(node, ctl: SimCtl, env: dict[str, str] | None = None, **config: str):
    vm, iso = ctl.vm("web-1"), ctl.image("rescue.iso")
    with provider_host(node.url, env=env, **config) as host:
        engine = engine_for(host)
        result = engine.up({"att": {"vm_uuid": vm, "iso_uuid": iso}})
        if result.ok:
            engine.destroy().raise_on_error()
        return result, host.stderr_text(), vm, iso


def test_tls_verification_is_on_by_default_and_refuses_a_self_signed_certificate(tls_node, tls_ctl):
    node, _, _ = tls_node
    result, _, vm, iso = attach_over_tls(node, tls_ctl)
    message = result.errors["att"].message
    assert message.startswith(
        f"{ERROR_PREFIX}attaching ISO {iso} to VM {vm} failed: CLIENT.TLS (The TLS connection to the ZStack "
        f"management node failed): TLS handshake with {node.url} failed: "
    ), message
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert message.endswith(
        "set zstack:tlsVerify (or ZSTACK_TLS_VERIFY) to the path of the CA bundle that signed the node's certificate"
    ), message
    assert tls_ctl.journal()["counters"]["requests"] == 0  # refused before any request reached the node


def test_a_ca_bundle_that_did_not_sign_the_certificate_is_refused_too(tls_node, tls_ctl):
    node, _, stranger = tls_node
    result, _, _, _ = attach_over_tls(node, tls_ctl, tlsVerify=str(stranger))
    assert "CLIENT.TLS" in result.errors["att"].message
    assert tls_ctl.journal()["counters"]["requests"] == 0


@pytest.mark.parametrize("where", ["stack config", "environment"])
def test_the_ca_bundle_given_in_config_or_environment_is_trusted(tls_node, tls_ctl, where):
    node, cert, _ = tls_node
    if where == "stack config":
        result, _, vm, iso = attach_over_tls(node, tls_ctl, tlsVerify=str(cert))
    else:
        result, _, vm, iso = attach_over_tls(node, tls_ctl, env={"ZSTACK_TLS_VERIFY": str(cert)})
    assert result.ok, result.errors
    assert tls_ctl.journal()["counters"]["jobs"] == 2  # attached, then detached by the destroy
    assert holders(tls_ctl, vm, iso) == []


def test_tls_verification_turned_off_works_and_says_so_in_the_log(tls_node, tls_ctl):
    node, _, _ = tls_node
    result, log, _, _ = attach_over_tls(node, tls_ctl, tlsVerify="false")
    assert result.ok, result.errors
    assert f"TLS certificate verification is disabled for {node.url}" in log


def test_a_ca_bundle_path_that_does_not_exist_is_a_configuration_error(tls_node, tls_ctl, tmp_path):
    node, _, _ = tls_node
    missing = tmp_path / "no-such-bundle.pem"
    result, _, _, _ = attach_over_tls(node, tls_ctl, tlsVerify=str(missing))
    assert result.errors["att"].message == (
        f"{ERROR_PREFIX}ZStack provider is not configured: zstack:tlsVerify / ZSTACK_TLS_VERIFY must be true, false "
        f"or the path of a CA bundle file; {str(missing)!r} is not a file"
    )
