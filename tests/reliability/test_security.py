"""Credentials never leak, whatever fails; TLS verification is on by default.

Canary credentials (a password and an AccessKey secret nobody would type) are seeded into a simulator; every
scenario runs a whole life (up, preview, refresh, destroy) with the provider's DEBUG log on, and then greps
the state (`__provider` decoded), the outputs, the provider host's log and every error message for them,
for the password's SHA-512 (what the node accepts) and for every session UUID the node handed out.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devkit import SimCtl, decode_provider
from tests.support import (
    CANARY_KEY_SECRET,
    CANARY_PASSWORD,
    ERROR_PREFIX,
    canary_secrets,
    canary_seed,
    engine_for,
    holders,
    provider_host,
)
from zstack_iso.simulator import run_simulator

PASSWORD, KEY_SECRET = CANARY_PASSWORD, CANARY_KEY_SECRET
DEBUG = {"ZSTACK_ISO_LOG_LEVEL": "DEBUG"}


@pytest.fixture(scope="module")
def canary_node():
    with run_simulator(port=0, seed=canary_seed(), job_seconds=0.02) as node:
        yield node


@pytest.fixture
def ctl(canary_node):
    ctl = SimCtl(canary_node.url)
    ctl.reset()
    yield ctl
    ctl.close()


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
def test_no_credential_reaches_the_state_outputs_log_or_errors(canary_node, ctl, scenario):
    build, faults, succeeds = SCENARIOS[scenario]
    vm, iso = ctl.vm("web-1"), ctl.image("rescue.iso")
    declared = {"att": {"vm_uuid": vm, "iso_uuid": iso}}
    for fault in faults:
        ctl.fault(**fault)
    texts: list[str] = []
    with provider_host(canary_node.url, env=DEBUG, **build(canary_node.url, ctl)) as host:
        texts.append(decode_provider(host.provider_string).decode("latin-1"))
        engine = engine_for(host)
        up = engine.up(declared)
        assert up.ok is succeeds, up.errors
        ctl.expire_sessions()  # every next call logs in again: one more session UUID to keep out of the log
        runs = [up, engine.preview(declared), engine.refresh(), engine.destroy()]
        log = host.stderr_text() + host.stdout_text()
    assert "DEBUG zstack_iso" in log or not succeeds  # the debug log was really on
    texts.append(log)
    for run in runs:
        texts.append(json.dumps([step.outputs for step in run.steps.values()], default=str))
        texts.extend(f"{error}\n{getattr(error, 'details', '')}" for error in run.errors.values())
    leaked = [secret for secret in canary_secrets(canary_node) for text in texts if secret in text]
    assert leaked == []


def test_an_endpoint_with_credentials_is_refused_without_echoing_them(canary_node, ctl):
    vm, iso = ctl.vm("web-1"), ctl.image("rescue.iso")
    url = canary_node.url.replace("http://", f"ftp://admin:{PASSWORD}@")
    with provider_host(canary_node.url, **account(url)) as host:
        error = engine_for(host).up({"att": {"vm_uuid": vm, "iso_uuid": iso}}).errors["att"]
    assert error.message == (
        f"{ERROR_PREFIX}ZStack provider is not configured: zstack:endpoint / ZSTACK_ENDPOINT must be an http(s) URL "
        "such as https://zstack.example.com:8080, got 'ftp://***@127.0.0.1:"
        f"{canary_node.port}'"
    )


# -- TLS --------------------------------------------------------------------------------------------------------


def make_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI; the cryptography package is not installed)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = make_certificate(folder, "zstack-node")
    stranger, _ = make_certificate(folder, "another-ca")
    with run_simulator(host="127.0.0.1", port=0, job_seconds=0.02, tls_cert=cert, tls_key=key) as node:
        yield node, cert, stranger


@pytest.fixture
def tls_ctl(tls_node):
    node, cert, _ = tls_node
    ctl = SimCtl(node.url, verify=str(cert))
    ctl.reset()
    yield ctl
    ctl.close()


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
