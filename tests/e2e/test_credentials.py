"""Credentials through the real CLI: set with `pulumi config set --secret`, they never reach the state, the
backend's files or the CLI's most verbose output; mistakes fail with the provider's message and write nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devkit import SimCtl
from tests.e2e.conftest import Project, attach_jobs, make_project
from tests.support import CANARY_KEY_SECRET, CANARY_PASSWORD, canary_secrets, writes

# The CLI at its most verbose: every engine and plugin log line, gRPC payloads included, on stderr.
VERBOSE = ("--logtostderr", "--logflow", "-v=11", "--debug")


@contextmanager
def sessions_seen(node) -> Iterator[set[str]]:
    """Every session the node hands out meanwhile (processes log theirs out when they end, so sample often)."""
    seen: set[str] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.update(list(node.node.sessions))
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        done.set()
        sampler.join()


def _everything_written(project: Project) -> list[str]:
    """The stack export and every file of the backend and of the CLI's home."""
    texts = [project.pulumi("stack", "export").stdout]
    for folder in (project.dir / ".state", project.dir / ".pulumi-home"):
        texts += [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()]
    return texts


def _up_fails_writing_nothing(project: Project) -> str:
    """`up` of rescue.iso on web-1, which must fail with nothing in the stack and no write on the node: its output."""
    sim = project.sim
    project.declare({"a": {"vm_uuid": sim.vm("web-1"), "iso_uuid": sim.image("rescue.iso")}})
    sim.clear_journal()
    up = project.up(check=False)
    assert up.code != 0
    assert project.resources() == {}
    assert writes(sim) == []
    return up.output


@pytest.mark.parametrize("auth", ["account", "access key"])
def test_no_password_key_or_session_reaches_the_state_backend_or_verbose_output(
    tmp_path: Path, cli: str, canary_node, canary_ctl: SimCtl, auth: str
):
    project = make_project(tmp_path / "project", cli, canary_ctl, credentials=False)
    if auth == "account":
        project.config("zstack:accountName", "admin")
        project.config("zstack:accountPassword", CANARY_PASSWORD, secret=True)
    else:
        key_id, _ = canary_ctl.access_key
        project.config("zstack:accessKeyId", key_id)
        project.config("zstack:accessKeySecret", CANARY_KEY_SECRET, secret=True)
    web1, rescue = canary_ctl.vm("web-1"), canary_ctl.image("rescue.iso")
    project.declare({"a": {"vm_uuid": web1, "iso_uuid": rescue}})
    debug = {"ZSTACK_ISO_LOG_LEVEL": "DEBUG"}

    with sessions_seen(canary_node) as sessions:
        runs = [
            project.pulumi("up", "--yes", *VERBOSE, env=debug),
            project.pulumi("preview", "--refresh", *VERBOSE, env=debug),
            project.pulumi("destroy", "--yes", *VERBOSE, env=debug),
        ]

    assert attach_jobs(canary_ctl) == [f"{web1}/iso/{rescue}"]
    assert sum(len(run.output) for run in runs) > 100_000  # it really was verbose
    secrets = canary_secrets(canary_node) + sorted(sessions)
    # An account logs in (the program's and the provider's sessions, logged out by now); an AccessKey signs.
    assert bool(sessions) == (auth == "account")
    texts = [run.output for run in runs] + _everything_written(project)
    leaked = sorted({secret for secret in secrets for text in texts if secret in text})
    assert leaked == []


def test_no_credentials_fails_with_the_providers_message_and_writes_nothing(project_without_credentials: Project):
    project = project_without_credentials

    output = _up_fails_writing_nothing(project)

    assert "ZStack provider is not configured" in output
    assert "zstack:accountName" in output


@pytest.mark.parametrize(
    ("key", "value", "secret", "said", "unsaid"),
    [
        pytest.param(
            "zstack:accountPassword",
            "not-the-password",
            True,
            ["ID.1000", "check zstack:accountName / zstack:accountPassword"],
            ["not-the-password"],
            id="wrong-password",  # ZStack's code and the hint, never the password
        ),
        pytest.param(
            "zstack:endpoint",
            "http://127.0.0.1:9",  # discard: nothing listens
            False,
            ["http://127.0.0.1:9", "CLIENT.UNREACHABLE"],
            [],
            id="unreachable-endpoint",  # the endpoint named
        ),
    ],
)
def test_a_wrong_setting_fails_with_the_providers_message_and_writes_nothing(
    project: Project, key: str, value: str, secret: bool, said: list[str], unsaid: list[str]
):
    project.config(key, value, secret=secret)

    output = _up_fails_writing_nothing(project)

    assert [text for text in said if text not in output] == []
    assert [text for text in unsaid if text in output] == []


def test_an_untrusted_certificate_is_refused_with_the_tls_hint(tmp_path: Path, cli: str, tls_node, tls_ctl: SimCtl):
    _, cert, _ = tls_node
    ctl = tls_ctl
    project = make_project(tmp_path / "project", cli, ctl)

    output = _up_fails_writing_nothing(project)

    assert "CLIENT.TLS" in output
    assert "set zstack:tlsVerify (or ZSTACK_TLS_VERIFY) to the path of the CA bundle" in output

    project.config("zstack:tlsVerify", str(cert))  # what the hint says to do
    project.up()
    assert attach_jobs(ctl) == [f"{ctl.vm('web-1')}/iso/{ctl.image('rescue.iso')}"]


@pytest.fixture
def project_without_credentials(tmp_path: Path, cli: str, sim: SimCtl) -> Project:
    return make_project(tmp_path / "project", cli, sim, credentials=False)
