"""Every change made outside Pulumi that changes what the provider sees, through the SDK's provider host as the
engine drives it: what a preview says, what refresh, up and destroy then do. One test per row of the table in
docs/out-of-band.md (the first three rows run through the real CLI too, in tests/e2e/test_out_of_band.py).

The node's side of each change follows zstackio/zstack (cited per test); the simulator's tests prove it.
"""

from __future__ import annotations

from devkit import Engine, ProviderHost
from tests.support import ERROR_PREFIX, iso_slots, named, slot, writes


def _replacement_preview(engine: Engine, host: ProviderHost, declared: dict) -> str:
    """A preview of `declared` that must plan to replace "tools": what the provider host logged meanwhile."""
    mark = host.mark()
    assert engine.preview(declared).raise_on_error().kinds == {"tools": "replace"}
    return host.stderr_text(mark)


def test_a_deleted_iso_image_is_named_in_the_preview_refused_by_up_and_attached_again_once_recovered(
    sim, engine: Engine, host: ProviderHost
):
    """DeleteImage detaches the ISO from every VM and the image reads back Deleted (ImageBase.java:285-549,
    DeleteIsoCase @ zstackio/zstack 5a29293)."""
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    declared = {"tools": {"vm_uuid": web1, "iso_uuid": rescue}}
    engine.up(declared).raise_on_error()
    was = iso_slots(sim, web1)[rescue]
    sim.delete_image(rescue)
    assert iso_slots(sim, web1) == {}
    sim.clear_journal()

    log = _replacement_preview(engine, host, declared)

    where = f"{named('ISO', rescue, 'rescue.iso')} on {named('VM', web1, 'web-1')}"
    assert (
        f"warning: {where}: the ISO image was deleted (status Deleted) outside Pulumi, which detached it (was in "
        f"{slot(was, 0)}); attaching it again will fail: recover the image, or remove this IsoAttachment"
    ) in log

    up = engine.up(declared)

    assert up.errors["tools"].message == (
        f"{ERROR_PREFIX}cannot attach {named('ISO', rescue, 'rescue.iso')} to {named('VM', web1, 'web-1')}: the "
        "image was deleted on ZStack (status Deleted); recover it (RecoverImage) or remove this IsoAttachment"
    )
    assert writes(sim) == []  # refused before any write (the open-source node would accept it on a Stopped VM)
    # The replacement's delete ran, its create failed: the state keeps it, pending replacement, as the real
    # engine does; refresh leaves it, and the next `up` once the image is recovered attaches it again.
    assert engine.resource("tools").pending_replacement
    assert engine.refresh().raise_on_error().kinds == {"tools": "same"}
    sim.recover_image(rescue)
    assert engine.up(declared).raise_on_error().kinds == {"tools": "replace"}
    assert rescue in iso_slots(sim, web1)
    assert engine.destroy().ok


def test_refresh_drops_an_attachment_whose_image_was_deleted_and_destroy_writes_nothing(sim, engine: Engine):
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    engine.up({"tools": {"vm_uuid": web1, "iso_uuid": rescue}}).raise_on_error()
    sim.delete_image(rescue)
    sim.clear_journal()

    assert engine.refresh().raise_on_error().kinds == {"tools": "delete"}
    assert engine.names() == []
    assert engine.destroy().ok
    assert writes(sim) == []


def test_an_expunged_iso_image_is_named_in_the_preview(sim, engine: Engine, host: ProviderHost):
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    declared = {"tools": {"vm_uuid": web1, "iso_uuid": rescue}}
    engine.up(declared).raise_on_error()
    sim.delete_image(rescue)
    sim.expunge_image(rescue)

    log = _replacement_preview(engine, host, declared)

    assert "the ISO image was expunged outside Pulumi, which detached it" in log
    assert "no image with that UUID exists" in str(engine.up(declared).errors["tools"])


def test_a_disabled_image_keeps_its_attachment_and_refuses_a_new_one(sim, engine: Engine):
    """ChangeImageState flips only the image's state; attachments stay (ImageBase.java:943-955)."""
    web1, web2, rescue = sim.vm("web-1"), sim.vm("web-2"), sim.image("rescue.iso")
    kept = {"kept": {"vm_uuid": web1, "iso_uuid": rescue}}
    engine.up(kept).raise_on_error()
    sim.change_image_state(rescue, "disable")
    sim.clear_journal()

    assert engine.preview(kept).raise_on_error().kinds == {"kept": "same"}
    assert engine.refresh().raise_on_error().kinds == {"kept": "same"}
    more = {**kept, "new": {"vm_uuid": web2, "iso_uuid": rescue}}
    up = engine.up(more)

    assert str(up.errors["new"]).endswith(
        f"cannot attach {named('ISO', rescue, 'rescue.iso')} to {named('VM', web2, 'web-2')}: the image is Disabled "
        "and Ready; it must be Enabled and Ready (enable it, or wait for its download to finish)"
    )
    assert up.kinds["kept"] == "same"
    assert writes(sim) == []
    assert rescue in iso_slots(sim, web1)


def test_an_iso_moved_by_an_order_change_shows_as_moved_and_up_converges(sim, engine: Engine, host: ProviderHost):
    """UpdateVmInstance with `iso::<uuid>::<deviceId>` swaps the ISO into the lowest-deviceId CD-ROM
    (VmInstanceBase.java:5420-5706, updateVmIsoFirstOrder)."""
    web1, ubuntu, rescue = sim.vm("web-1"), sim.image("ubuntu-22.04-server.iso"), sim.image("rescue.iso")
    declared = {"ubuntu": {"vm_uuid": web1, "iso_uuid": ubuntu}, "rescue": {"vm_uuid": web1, "iso_uuid": rescue}}
    engine.up({"ubuntu": declared["ubuntu"]}).raise_on_error()
    engine.up(declared).raise_on_error()
    first, second, _ = (c["uuid"] for c in sim.cdroms(web1))
    assert iso_slots(sim, web1) == {ubuntu: first, rescue: second}
    sim.change_iso_order(web1, rescue)
    assert iso_slots(sim, web1) == {rescue: first, ubuntu: second}
    mark = host.mark()

    preview = engine.preview(declared).raise_on_error()

    assert preview.kinds == {"ubuntu": "replace", "rescue": "replace"}
    log = host.stderr_text(mark)
    assert f"moved outside Pulumi from {slot(second, 1)} to {slot(first, 0)}" in log
    assert f"moved outside Pulumi from {slot(first, 0)} to {slot(second, 1)}" in log

    engine.up(declared).raise_on_error()

    assert set(iso_slots(sim, web1)) == {ubuntu, rescue}
    assert engine.preview(declared).raise_on_error().kinds == {"ubuntu": "same", "rescue": "same"}


def test_an_iso_whose_cdrom_was_deleted_is_attached_again_to_another(sim, engine: Engine, host: ProviderHost):
    """DeleteVmCdRom of a CD-ROM holding an ISO (VM Stopped) drops the ISO with it (VmInstanceBase.java:8338-8396)."""
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    declared = {"tools": {"vm_uuid": web1, "iso_uuid": rescue}}
    engine.up(declared).raise_on_error()
    holder = iso_slots(sim, web1)[rescue]
    sim.stop_vm(web1)
    sim.delete_cdrom(holder)

    log = _replacement_preview(engine, host, declared)

    assert f"detached outside Pulumi (was in {slot(holder, 0)}); it will be attached again" in log

    engine.up(declared).raise_on_error()

    new_holder = iso_slots(sim, web1)[rescue]
    assert new_holder != holder
    assert engine.resource("tools").outputs["cdrom_uuid"] == new_holder


def test_a_vm_destroyed_then_recovered_keeps_its_attachment(sim, engine: Engine, host: ProviderHost):
    """Destroy keeps the CD-ROMs and their ISOs; recover brings the VM back Stopped with them
    (VmInstanceBase.java:4310-4472)."""
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    declared = {"tools": {"vm_uuid": web1, "iso_uuid": rescue}}
    engine.up(declared).raise_on_error()
    sim.destroy_vm(web1)

    log = _replacement_preview(engine, host, declared)

    assert f"{named('VM', web1, 'web-1')}: the VM is Destroyed; the attachment will be replaced" in log

    sim.recover_vm(web1)
    sim.clear_journal()

    assert engine.preview(declared).raise_on_error().kinds == {"tools": "same"}
    assert engine.refresh().raise_on_error().kinds == {"tools": "same"}
    assert writes(sim) == []


def test_a_vm_expunged_drops_its_attachment_on_refresh_and_destroy_succeeds(sim, engine: Engine, host: ProviderHost):
    """Expunge deletes the VM and its CD-ROM rows, not the images (VmInstanceBase.java:1284-1332)."""
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    declared = {"tools": {"vm_uuid": web1, "iso_uuid": rescue}}
    engine.up(declared).raise_on_error()
    sim.destroy_vm(web1)
    sim.expunge_vm(web1)

    log = _replacement_preview(engine, host, declared)

    assert "the VM no longer exists; the attachment will be replaced" in log
    sim.clear_journal()

    assert engine.refresh().raise_on_error().kinds == {"tools": "delete"}
    assert engine.destroy().ok
    assert writes(sim) == []
