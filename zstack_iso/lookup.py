"""Data-source style lookups for Pulumi programs: find VMs, ISOs and CD-ROMs by name.

They run in the program's process (not the provider's), with the same settings as the provider: the
`zstack` stack config namespace, then the ZSTACK_* environment variables.
"""

from __future__ import annotations

import atexit
import threading

import pulumi

from .client import ZStackClient
from .config import ZStackSettings
from .models import Image, VmCdRom, VmInstance

_clients: dict[ZStackSettings, ZStackClient] = {}
_clients_lock = threading.Lock()


class ZStackLookupError(LookupError):
    """Nothing, or more than one thing, matched a lookup."""


def default_client() -> ZStackClient:
    """The program's client for the current settings (stack config `zstack:*`, then ZSTACK_* variables)."""
    settings = ZStackSettings.load(pulumi.Config("zstack").get)
    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            client = _clients[settings] = ZStackClient(settings)
            atexit.register(client.close)  # the program's session is logged out when the program ends
        return client


def find_vm_instance(name: str, *, client: ZStackClient | None = None) -> VmInstance:
    """The one VM named `name` that is not Destroyed."""
    client = client or default_client()
    found = [vm for vm in client.query_vms(name=name) if vm.state != "Destroyed"]
    return _one(found, f"VM named {name!r}", "VMs")


def find_iso(name: str, *, client: ZStackClient | None = None) -> Image:
    """The one ISO image named `name`."""
    client = client or default_client()
    return _one(client.query_images(name=name, media_type="ISO"), f"ISO image named {name!r}", "ISO images")


def find_cdrom(vm: VmInstance, device_id: int) -> VmCdRom:
    """The CD-ROM of `vm` with this device id (0 is the boot CD-ROM)."""
    match = [c for c in vm.cdroms if c.device_id == device_id]
    return _one(match, f"CD-ROM with device id {device_id} on VM {vm.name} ({vm.uuid})", "CD-ROMs")


def _one(found: list, what: str, plural: str):
    if not found:
        raise ZStackLookupError(f"no {what} was found on the ZStack management node; check the name")
    if len(found) > 1:
        uuids = ", ".join(item.uuid for item in found)
        raise ZStackLookupError(f"{len(found)} {plural} match the {what} ({uuids}); use a UUID instead")
    return found[0]
