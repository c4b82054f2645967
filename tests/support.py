"""Shared test helpers: the provider host and engine for the simulator, and what the node holds.

The reliability campaign (tests/reliability/) uses all of it: every campaign test drives the
provider through the SDK's own provider host (`python -m pulumi.dynamic`) and judges the outcome by what a
user would see: the node's CD-ROMs, the simulator's journal (jobs accepted, logins), the engine's state after
a refresh, and the message of a failure.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devkit import Engine, ProviderHost, SimCtl
from zstack_iso.provider import IsoAttachmentProvider
from zstack_iso.simulator import DEFAULT_SEED_PATH

TYPE = "pulumi-python:dynamic/zstack:IsoAttachment"
SECRET_KEYS = ["zstack:accountPassword", "zstack:accessKeySecret"]
ERROR_PREFIX = "zstack_iso.errors.IsoAttachmentError: "
ISOS = ("ubuntu-22.04-server.iso", "virtio-win-0.1.240.iso", "rescue.iso")


def host_config(url: str, **extra: str) -> dict[str, str]:
    """Stack config for the admin account of the simulator at url, plus extra `zstack:` keys."""
    config = {"zstack:endpoint": url, "zstack:accountName": "admin", "zstack:accountPassword": "password"}
    config.update({f"zstack:{key}": value for key, value in extra.items()})
    return config


def provider_host(url: str, *, env: Mapping[str, str] | None = None, **extra: str) -> ProviderHost:
    """A provider host (not started) for the simulator at url; the outer ZSTACK_* variables are removed."""
    return ProviderHost(
        IsoAttachmentProvider(),
        config=host_config(url, **extra),
        secret_keys=SECRET_KEYS,
        remove_env=["ZSTACK_*"],
        env=env,
    )


def engine_for(host: ProviderHost, **kwargs: Any) -> Engine:
    return Engine(host, type_=TYPE, **kwargs)


# -- what the node holds -------------------------------------------------------------------------------------


def holders(sim: SimCtl, vm: str, iso: str) -> list[dict[str, Any]]:
    """Every CD-ROM of the VM that holds the ISO (the node allows at most one)."""
    return [c for c in sim.cdroms(vm) if c.get("isoUuid") == iso]


def iso_slots(sim: SimCtl, vm: str) -> dict[str, str]:
    """ISO UUID -> CD-ROM UUID for every ISO attached to the VM."""
    return {c["isoUuid"]: c["uuid"] for c in sim.cdroms(vm) if c.get("isoUuid")}


def node_invariants(sim: SimCtl) -> list[str]:
    """Violations of the node's own rules: an ISO at most once per VM, at most 3 CD-ROMs per VM."""
    inventory = sim.inventory()
    problems = []
    for vm in inventory["vmInstances"]:
        cdroms = [c for c in inventory["vmCdRoms"] if c["vmInstanceUuid"] == vm["uuid"]]
        isos = [c["isoUuid"] for c in cdroms if c.get("isoUuid")]
        if len(isos) != len(set(isos)):
            problems.append(f"VM {vm['name']} holds an ISO twice: {isos}")
        if len(cdroms) > 3:
            problems.append(f"VM {vm['name']} has {len(cdroms)} CD-ROMs")
    return problems


def counters(sim: SimCtl) -> dict[str, int]:
    """The journal's counters: requests, logins, jobs (async jobs the node accepted)."""
    return sim.journal()["counters"]


def requests_to(sim: SimCtl, method: str, fragment: str) -> list[dict[str, Any]]:
    return [r for r in sim.journal()["requests"] if r["method"] == method and fragment in r["path"]]


def writes(sim: SimCtl) -> list[str]:
    """The ZStack write calls the node received (logins excluded)."""
    return [
        f"{r['method']} {r['path']}"
        for r in sim.journal()["requests"]
        if r["method"] in ("POST", "PUT", "DELETE") and "/accounts/" not in r["path"]
    ]


def wait_quiet(sim: SimCtl, seconds: float = 0.3) -> None:
    """Let jobs the provider left running on the node finish (a lost answer does not stop a job)."""
    time.sleep(seconds)


# -- engine and node agree -----------------------------------------------------------------------------------


def disagreements(engine: Engine, sim: SimCtl) -> list[str]:
    """Where the engine's state and the node disagree: every resource's ISO must be in the CD-ROM its
    outputs name, with that device id, exactly once."""
    problems = []
    for name in engine.names():
        res = engine.resource(name)
        assert res is not None
        outs = res.outputs
        found = holders(sim, outs["vm_uuid"], outs["iso_uuid"])
        if len(found) != 1:
            problems.append(f"{name}: the node holds the ISO in {len(found)} CD-ROMs")
        elif (found[0]["uuid"], found[0]["deviceId"]) != (outs["cdrom_uuid"], outs["device_id"]):
            problems.append(
                f"{name}: state says CD-ROM {outs['cdrom_uuid']} (device {outs['device_id']}), "
                f"the node {found[0]['uuid']} (device {found[0]['deviceId']})"
            )
    return problems


# -- seeds ---------------------------------------------------------------------------------------------------


def default_seed() -> dict[str, Any]:
    return json.loads(DEFAULT_SEED_PATH.read_text(encoding="utf-8"))


def seed_with_farm(vms: int, cdroms: int = 3) -> dict[str, Any]:
    """The default inventory plus `vms` Running VMs named farm-1.. with `cdroms` empty CD-ROMs each."""
    seed = default_seed()
    template = next(vm for vm in seed["vmInstances"] if vm["name"] == "web-1")
    for number in range(1, vms + 1):
        vm = copy.deepcopy(template)
        vm.pop("uuid", None)  # derived from the name: the same on every start
        vm["name"] = f"farm-{number}"
        vm["ip"] = f"10.0.1.{number}"
        vm["cdRoms"] = [{"deviceId": device} for device in range(cdroms)]
        seed["vmInstances"].append(vm)
    return seed


# -- canary credentials ----------------------------------------------------------------------------------------

CANARY_PASSWORD = "Canary-Pw-e4da3b7fbbce2345"
CANARY_KEY_SECRET = "Canary-Sk-1679091c5a880faf"


def canary_seed() -> dict[str, Any]:
    """The default inventory whose admin password and AccessKey secret are canaries to look for in output."""
    seed = default_seed()
    seed["accounts"][0]["password"] = CANARY_PASSWORD
    seed["accessKeys"][0]["secret"] = CANARY_KEY_SECRET
    return seed


def canary_secrets(node: Any) -> list[str]:
    """What must never leak: the canaries, the password's SHA-512 and every session the node gave out."""
    hashed = hashlib.sha512(CANARY_PASSWORD.encode()).hexdigest()
    return [CANARY_PASSWORD, hashed, CANARY_KEY_SECRET, *node.node.sessions]


def named(kind: str, uuid: str, name: str) -> str:
    """How the provider's messages name a VM, an ISO or an image: `VM web-1 (dd4ec5f8…)`."""
    return f"{kind} {name} ({uuid[:8]}…)"


def slot(cdrom_uuid: str, device_id: int) -> str:
    """How the provider's messages name a CD-ROM: `CD-ROM b7c281d2… (device 0)`."""
    return f"CD-ROM {cdrom_uuid[:8]}… (device {device_id})"


# -- TLS -------------------------------------------------------------------------------------------------------


def make_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 named `name`, and its key (openssl CLI; the cryptography package
    is not installed)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
