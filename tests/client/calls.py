"""ZStack calls that only tests make, built on the client's own parts (``client.jobs``, ``client.queries``,
``client.auth``): VM lifecycle jobs (§13), CD-ROM reads (§4.1, §7.1), ISO candidates (§4.3), and a session
of one's own (§1.1). The provider needs none of them, so the client does not carry them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zstack_iso.client import ZStackClient
from zstack_iso.client.transport import quote_segment
from zstack_iso.models import Image, Session, VmCdRom, VmInstance


def login(client: ZStackClient) -> Session:
    """LogInByAccount: a new session, owned by the caller (who logs it out)."""
    return client.auth.login()


def get_cdrom(client: ZStackClient, cdrom_uuid: str) -> VmCdRom | None:
    return client.queries.by_uuid(VmCdRom, "vm-instances/cdroms", cdrom_uuid, api="QueryVmCdRom")


def list_cdroms(client: ZStackClient, vm_uuid: str) -> list[VmCdRom]:
    """The VM's CD-ROMs sorted by device id (§7.1), from QueryVmCdRom."""
    cdroms = client.queries.query_as(VmCdRom, "vm-instances/cdroms", (), {"vmInstanceUuid": vm_uuid})
    return sorted(cdroms, key=lambda c: (c.device_id is None, c.device_id or 0))


def get_iso_candidates(client: ZStackClient, vm_uuid: str) -> list[Image]:
    """GetCandidateIsoForAttachingVm (§4.3): Enabled, Ready ISOs not yet attached to the VM."""
    path = f"/vm-instances/{quote_segment(vm_uuid)}/iso-candidates"
    rows = client.queries.inventories(path, api="GetCandidateIsoForAttachingVm")
    return [Image.model_validate(row) for row in rows]


def start_vm(client: ZStackClient, vm_uuid: str) -> VmInstance:
    """StartVmInstance (§13)."""
    return _vm_action(client, vm_uuid, "startVmInstance", {}, "Running")


def stop_vm(client: ZStackClient, vm_uuid: str, *, stop_type: str = "grace") -> VmInstance:
    """StopVmInstance (§13); ``stop_type`` is ``grace`` or ``cold``."""
    return _vm_action(client, vm_uuid, "stopVmInstance", {"type": stop_type}, "Stopped")


def reboot_vm(client: ZStackClient, vm_uuid: str) -> VmInstance:
    """RebootVmInstance (§13)."""
    return _vm_action(client, vm_uuid, "rebootVmInstance", {}, "Running")


def recover_vm(client: ZStackClient, vm_uuid: str) -> VmInstance:
    """RecoverVmInstance (§13): Destroyed → Stopped."""
    return _vm_action(client, vm_uuid, "recoverVmInstance", {}, "Stopped")


def expunge_vm(client: ZStackClient, vm_uuid: str) -> None:
    """ExpungeVmInstance (§13): the VM is gone afterwards."""
    _run_action(client, vm_uuid, "expungeVmInstance", {}, lambda v: v is None, f"VM {vm_uuid} no longer exists")


def destroy_vm(client: ZStackClient, vm_uuid: str, *, delete_mode: str = "Permissive") -> None:
    """DestroyVmInstance (§13): soft delete, the VM stays queryable as Destroyed."""
    client.jobs.run_settled(
        "DELETE",
        f"/vm-instances/{quote_segment(vm_uuid)}",
        api="DestroyVmInstance",
        vm_uuid=vm_uuid,
        params={"deleteMode": delete_mode},
        done=lambda v: v is None or v.state == "Destroyed",
        expected=f"VM {vm_uuid} is Destroyed",
    )


def _vm_action(client: ZStackClient, vm_uuid: str, action: str, params: dict[str, Any], state: str) -> VmInstance:
    """A lifecycle job that leaves the VM in ``state``; the VM from its result, or read afterwards."""
    done = lambda v: v is not None and v.state == state  # noqa: E731
    vm = _run_action(client, vm_uuid, action, params, done, f"VM {vm_uuid} is {state}")
    vm = vm or client.get_vm(vm_uuid)
    assert vm is not None, f"VM {vm_uuid} vanished after {action}"
    return vm


def _run_action(
    client: ZStackClient,
    vm_uuid: str,
    action: str,
    params: dict[str, Any],
    done: Callable[[VmInstance | None], bool],
    expected: str,
) -> VmInstance | None:
    """One ``PUT /vm-instances/{uuid}/actions`` job (§13); the VM of its result, or the one read settling it."""
    result, vm = client.jobs.run_settled(
        "PUT",
        f"/vm-instances/{quote_segment(vm_uuid)}/actions",
        api=action[0].upper() + action[1:],
        vm_uuid=vm_uuid,
        json_body={action: params},
        done=done,
        expected=expected,
    )
    if result is None:
        return vm
    inventory = result.get("inventory")
    return None if inventory is None else VmInstance.model_validate(inventory)
