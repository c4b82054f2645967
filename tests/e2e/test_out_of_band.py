"""The first three rows of docs/out-of-band.md through the real CLI: an ISO image deleted, an image disabled,
an ISO moved by an order change (the provider-host tests, tests/provider/test_out_of_band.py, cover every row)."""

from __future__ import annotations

from tests.e2e.conftest import Project, attach_jobs
from tests.support import named, slot, writes


def test_a_deleted_iso_image_is_named_in_a_plain_preview_and_up_fails_before_any_write(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare_and_up({"tools": {"vm_uuid": web1, "iso_uuid": rescue}})
    was = sim.cdroms(web1)[0]["uuid"]
    sim.delete_image(rescue)
    sim.clear_journal()

    preview = project.preview()

    where = f"{named('ISO', rescue, 'rescue.iso')} on {named('VM', web1, 'web-1')}"
    assert (
        f"{where}: the ISO image was deleted (status Deleted) outside Pulumi, which detached it (was in "
        f"{slot(was, 0)}); attaching it again will fail"
    ) in preview.stdout

    up = project.up(check=False)

    assert up.code != 0
    assert "the image was deleted on ZStack (status Deleted); recover it (RecoverImage) or remove this" in up.output
    assert writes(sim) == []

    # The replacement's delete ran and its create failed: the real engine keeps the old state, marked
    # pendingReplacement; refresh leaves it there, and destroy drops it without a detach.
    assert project.resources()["tools"].get("pendingReplacement") is True
    project.refresh()
    assert "tools" in project.resources()
    project.destroy()
    assert project.resources() == {}
    assert writes(sim) == []


def test_refresh_drops_an_attachment_whose_image_was_deleted(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare_and_up({"tools": {"vm_uuid": web1, "iso_uuid": rescue}})
    sim.delete_image(rescue)
    sim.clear_journal()

    project.refresh()

    assert project.resources() == {}
    assert "+ 1 to create" in project.preview().stdout
    assert writes(sim) == []


def test_a_disabled_image_keeps_its_attachment_and_a_new_one_is_refused(project: Project):
    sim = project.sim
    web1, web2, rescue = sim.vm("web-1"), sim.vm("web-2"), sim.image("rescue.iso")
    project.declare_and_up({"kept": {"vm_uuid": web1, "iso_uuid": rescue}})
    sim.change_image_state(rescue, "disable")
    sim.clear_journal()

    project.preview("--expect-no-changes")
    project.declare({"kept": {"vm_uuid": web1, "iso_uuid": rescue}, "new": {"vm_uuid": web2, "iso_uuid": rescue}})
    up = project.up(check=False)

    assert up.code != 0
    assert (
        f"cannot attach {named('ISO', rescue, 'rescue.iso')} to {named('VM', web2, 'web-2')}: the image is Disabled"
    ) in up.output
    assert set(project.resources()) == {"kept"}
    assert writes(sim) == []


def test_an_iso_moved_by_an_order_change_shows_in_a_plain_preview_and_up_converges(project: Project):
    sim = project.sim
    web1, ubuntu, rescue = sim.vm("web-1"), sim.image("ubuntu-22.04-server.iso"), sim.image("rescue.iso")
    project.declare_and_up({"ubuntu": {"vm_uuid": web1, "iso_uuid": ubuntu}})
    project.declare_and_up(
        {"ubuntu": {"vm_uuid": web1, "iso_uuid": ubuntu}, "rescue": {"vm_uuid": web1, "iso_uuid": rescue}}
    )
    first, second, _ = (c["uuid"] for c in sim.cdroms(web1))
    sim.change_iso_order(web1, rescue)
    sim.clear_journal()

    preview = project.preview()

    assert f"moved outside Pulumi from {slot(second, 1)} to {slot(first, 0)}" in preview.stdout
    assert "+-2 to replace" in preview.stdout

    project.up()

    assert sorted(attach_jobs(sim)) == sorted([f"{web1}/iso/{ubuntu}", f"{web1}/iso/{rescue}"])
    project.preview("--expect-no-changes")
