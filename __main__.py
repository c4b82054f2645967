"""Example program: ISO mounts declared from stack config, VMs and ISOs found by name.

    pulumi config set --path 'attachments[0].vm' web-1
    pulumi config set --path 'attachments[0].iso' ubuntu-22.04-server.iso
    pulumi config set --path 'attachments[0].cdromDeviceId' 2     # optional: pin a CD-ROM

Without `attachments` it declares a demo set that fits the simulator's default inventory.
"""

import pulumi

from zstack_iso import IsoAttachment, find_cdrom, find_iso, find_vm_instance

DEMO = [
    {"vm": "web-1", "iso": "ubuntu-22.04-server.iso"},
    {"vm": "web-1", "iso": "virtio-win-0.1.240.iso", "cdromDeviceId": 2},
    {"vm": "web-2", "iso": "rescue.iso"},
    {"vm": "db-1", "iso": "ubuntu-22.04-server.iso"},
]

config = pulumi.Config()
declared = config.get_object("attachments") or DEMO

for entry in declared:
    vm = find_vm_instance(entry["vm"])
    iso = find_iso(entry["iso"])
    pinned = entry.get("cdromDeviceId")
    attachment = IsoAttachment(
        f"{entry['vm']}--{entry['iso']}",
        vm_uuid=vm.uuid,
        iso_uuid=iso.uuid,
        cdrom_uuid=find_cdrom(vm, int(pinned)).uuid if pinned is not None else None,
    )
    pulumi.export(
        f"{entry['vm']}/{entry['iso']}",
        {
            "id": attachment.id,
            "vm_uuid": attachment.vm_uuid,
            "iso_uuid": attachment.iso_uuid,
            "cdrom_uuid": attachment.cdrom_uuid,
            "device_id": attachment.device_id,
        },
    )
