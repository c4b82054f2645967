"""The user's API: `IsoAttachment` and its arguments."""

from __future__ import annotations

from typing import Any, overload

import pulumi
from pulumi.dynamic import Resource

from .provider import IsoAttachmentProvider, format_id, parse_id


@pulumi.input_type
class IsoAttachmentArgs:
    """Which ISO goes into which VM, optionally into which of its CD-ROMs."""

    def __init__(
        self,
        *,
        vm_uuid: pulumi.Input[str],
        iso_uuid: pulumi.Input[str],
        cdrom_uuid: pulumi.Input[str] | None = None,
    ) -> None:
        pulumi.set(self, "vm_uuid", vm_uuid)
        pulumi.set(self, "iso_uuid", iso_uuid)
        if cdrom_uuid is not None:
            pulumi.set(self, "cdrom_uuid", cdrom_uuid)

    @property
    @pulumi.getter(name="vm_uuid")
    def vm_uuid(self) -> pulumi.Input[str]:
        """UUID of the VM; changing it replaces the attachment."""
        return pulumi.get(self, "vm_uuid")

    @property
    @pulumi.getter(name="iso_uuid")
    def iso_uuid(self) -> pulumi.Input[str]:
        """UUID of the ISO image; changing it replaces the attachment."""
        return pulumi.get(self, "iso_uuid")

    @property
    @pulumi.getter(name="cdrom_uuid")
    def cdrom_uuid(self) -> pulumi.Input[str] | None:
        """UUID of the VM's CD-ROM to use; without it ZStack picks the empty one with the lowest device id."""
        return pulumi.get(self, "cdrom_uuid")


class IsoAttachment(Resource, module="zstack", name="IsoAttachment"):
    """An ISO image mounted in a CD-ROM of a ZStack VM.

    Create attaches, delete detaches, and previews read the VM's live state so that an ISO detached or
    moved by hand shows up as a replacement. The ID is ``"<vm_uuid>/<iso_uuid>"``.
    """

    vm_uuid: pulumi.Output[str]
    iso_uuid: pulumi.Output[str]
    cdrom_uuid: pulumi.Output[str]
    """The CD-ROM that holds the ISO (the pinned one, or the one ZStack picked)."""
    device_id: pulumi.Output[int]
    """The CD-ROM's device id on the VM (0 is the boot CD-ROM)."""
    vm_name: pulumi.Output[str]
    """The VM's name on ZStack when it was last read (for people; changing it on ZStack changes nothing)."""
    iso_name: pulumi.Output[str]
    """The ISO image's name on ZStack when it was attached or adopted."""

    @overload
    def __init__(
        self, resource_name: str, args: IsoAttachmentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None: ...

    @overload
    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        vm_uuid: pulumi.Input[str],
        iso_uuid: pulumi.Input[str],
        cdrom_uuid: pulumi.Input[str] | None = None,
    ) -> None: ...

    def __init__(self, resource_name: str, *args: Any, **kwargs: Any) -> None:
        args_obj, opts = _split_args(args, kwargs)
        props = {
            "vm_uuid": args_obj.vm_uuid,
            "iso_uuid": args_obj.iso_uuid,
            "cdrom_uuid": args_obj.cdrom_uuid,
            # Outputs only: declared so that they become attributes.
            "device_id": None,
            "vm_name": None,
            "iso_name": None,
        }
        super().__init__(IsoAttachmentProvider(), resource_name, props, opts)

    @staticmethod
    def get(resource_name: str, id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None) -> IsoAttachment:
        """Read an existing attachment by its ID ``"<vm_uuid>/<iso_uuid>"`` without managing it."""
        if isinstance(id, str):
            parse_id(id)  # a malformed ID given as a string fails here, at the line that passes it
        ids = pulumi.Output.from_input(id).apply(parse_id)
        vm_uuid, iso_uuid = ids.apply(lambda pair: pair[0]), ids.apply(lambda pair: pair[1])
        return IsoAttachment(
            resource_name,
            IsoAttachmentArgs(vm_uuid=vm_uuid, iso_uuid=iso_uuid),
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=ids.apply(lambda pair: format_id(*pair)))),
        )


def _split_args(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[IsoAttachmentArgs, pulumi.ResourceOptions | None]:
    """Accept both `IsoAttachment(name, IsoAttachmentArgs(...), opts)` and keyword inputs."""
    if len(args) > 2:
        raise TypeError("IsoAttachment takes (resource_name, args=None, opts=None, *, vm_uuid, iso_uuid, cdrom_uuid)")
    if len(args) == 2 or (args and not isinstance(args[0], pulumi.ResourceOptions)):
        args_obj, opts = (*args, None)[:2]  # (args, opts) or (args,)
    else:
        args_obj, opts = None, (args[0] if args else None)  # the keyword form: (opts,) or ()
    args_obj = kwargs.pop("args", args_obj)
    opts = kwargs.pop("opts", opts)
    if args_obj is not None and not isinstance(args_obj, IsoAttachmentArgs):
        raise TypeError(f"args must be IsoAttachmentArgs, got {type(args_obj).__name__}")
    if args_obj is not None and kwargs:
        raise TypeError(f"pass either IsoAttachmentArgs or keyword inputs, not both (got {sorted(kwargs)})")
    if args_obj is None:
        unknown = set(kwargs) - {"vm_uuid", "iso_uuid", "cdrom_uuid"}
        if unknown:
            raise TypeError(f"unexpected IsoAttachment inputs: {sorted(unknown)}")
        missing = [k for k in ("vm_uuid", "iso_uuid") if kwargs.get(k) is None]
        if missing:
            raise TypeError(f"IsoAttachment requires {' and '.join(missing)}")
        args_obj = IsoAttachmentArgs(**kwargs)
    if opts is not None and not isinstance(opts, pulumi.ResourceOptions):
        raise TypeError(f"opts must be pulumi.ResourceOptions, got {type(opts).__name__}")
    return args_obj, opts
