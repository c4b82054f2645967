"""What every user's state depends on: importing the package does nothing, and the provider pickles to a bare
class reference even after it was configured with credentials."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from devkit import PROJECT_ROOT, decode_provider, run_program, serialize_provider
from zstack_iso import IsoAttachment, IsoAttachmentArgs
from zstack_iso.provider import IsoAttachmentProvider

INPUTS = {"vm_uuid": "ab" * 16, "iso_uuid": "cd" * 16}


def test_importing_the_package_has_no_side_effects():
    probe = (
        "import socket, threading\n"
        "def refuse(*a, **k): raise AssertionError('network access at import time')\n"
        "socket.socket.connect = refuse\n"
        "import zstack_iso, zstack_iso.provider\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "print('ok')\n"
    )
    env = {"PATH": "/usr/bin:/bin"}  # no ZSTACK_* and no Pulumi settings: nothing to read at import
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_provider_pickles_by_reference_even_after_configure():
    provider = IsoAttachmentProvider()
    provider.configure(
        ConfigureRequest(
            Config(
                {"zstack:host": "10.0.0.1", "zstack:accountName": "admin", "zstack:accountPassword": "s3cr3t-pw"}, "p"
            )
        )
    )
    pickled = decode_provider(serialize_provider(provider))
    assert b"zstack_iso.provider" in pickled and b"IsoAttachmentProvider" in pickled
    assert b"s3cr3t-pw" not in pickled and b"10.0.0.1" not in pickled
    assert len(pickled) < 200


@pytest.mark.parametrize(
    "call",
    [
        'IsoAttachment("a", IsoAttachmentArgs(**INPUTS), opts)',
        'IsoAttachment("a", None, opts, **INPUTS)',
        'IsoAttachment("a", opts, **INPUTS)',
        'IsoAttachment("a", None, **INPUTS)',
        'IsoAttachment("a", args=None, opts=opts, **INPUTS)',
        'IsoAttachment("a", args=IsoAttachmentArgs(**INPUTS), opts=opts)',
    ],
)
def test_every_documented_call_form_registers_the_resource(tmp_path, call):
    (tmp_path / "Pulumi.yaml").write_text("name: call-forms\nruntime: python\n")
    (tmp_path / "__main__.py").write_text(
        "import pulumi\n"
        "from zstack_iso import IsoAttachment, IsoAttachmentArgs\n"
        f"INPUTS = {INPUTS!r}\n"
        "opts = pulumi.ResourceOptions(protect=False)\n"
        f"{call}\n"
    )
    run = run_program(tmp_path / "__main__.py")
    assert [r.props for r in run.dynamic()] == [INPUTS]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: IsoAttachment("a", vm_uuid=INPUTS["vm_uuid"]), "requires iso_uuid"),
        (lambda: IsoAttachment("a", IsoAttachmentArgs(**INPUTS), vm_uuid=INPUTS["vm_uuid"]), "not both"),
        (lambda: IsoAttachment("a", "web-1"), "args must be IsoAttachmentArgs"),
        (lambda: IsoAttachment("a", None, None, None), "IsoAttachment takes"),
    ],
)
def test_a_wrong_call_form_says_how_to_call_it(call, message):
    with pytest.raises(TypeError, match=message):
        call()
