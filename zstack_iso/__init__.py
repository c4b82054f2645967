"""zstack-iso: ISO mounts on ZStack Cloud VMs as declarative Pulumi state.

Importing this package has no side effects: no network, no config reads. The provider class lives at
`zstack_iso.provider.IsoAttachmentProvider`, a path recorded in every user's Pulumi state.
"""

from .lookup import find_cdrom, find_iso, find_vm_instance
from .resource import IsoAttachment, IsoAttachmentArgs

__all__ = ["IsoAttachment", "IsoAttachmentArgs", "find_cdrom", "find_iso", "find_vm_instance"]
