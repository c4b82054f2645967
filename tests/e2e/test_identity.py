"""Which resource owns an attachment, as the real engine decides: renames, twins, adoption, import, get."""

from __future__ import annotations

from tests.e2e.conftest import Project, attach_jobs, detach_jobs
from tests.support import iso_slots, named, writes

TYPE = "pulumi-python:dynamic/zstack:IsoAttachment"


def test_a_rename_with_an_alias_changes_nothing_on_the_node(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare_and_up({"old": {"vm_uuid": web1, "iso_uuid": rescue}})
    sim.clear_journal()
    project.write_program(
        f"""
        IsoAttachment("new", vm_uuid={web1!r}, iso_uuid={rescue!r},
                      opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="old")]))
        """
    )

    project.preview("--expect-no-changes")
    up = project.up()

    assert "2 unchanged" in up.stdout
    assert set(project.resources()) == {"new"}
    assert rescue in iso_slots(sim, web1)
    assert writes(sim) == []


def test_a_rename_without_an_alias_keeps_the_iso_attached(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare_and_up({"old": {"vm_uuid": web1, "iso_uuid": rescue}})
    sim.clear_journal()
    project.declare({"new": {"vm_uuid": web1, "iso_uuid": rescue}})

    up = project.up()

    # The engine creates "new" (which adopts the attached ISO) before it deletes "old" (which leaves it).
    assert "+ 1 created" in up.stdout and "- 1 deleted" in up.stdout
    assert f"adopted {named('ISO', rescue, 'rescue.iso')} on {named('VM', web1, 'web-1')}" in up.stdout
    assert "is now managed by another IsoAttachment of this deployment (renamed without aliases?)" in up.stdout
    assert set(project.resources()) == {"new"}
    assert rescue in iso_slots(sim, web1)
    assert attach_jobs(sim) == [] and detach_jobs(sim) == []
    project.preview("--expect-no-changes")


def test_a_twin_declaration_fails_one_of_the_two_and_attaches_once(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare({"a": {"vm_uuid": web1, "iso_uuid": rescue}, "b": {"vm_uuid": web1, "iso_uuid": rescue}})

    up = project.up(check=False)

    assert up.code != 0
    where = f"{named('ISO', rescue, 'rescue.iso')} on {named('VM', web1, 'web-1')}"
    assert f"{where} is declared by two IsoAttachment resources in this deployment" in up.output
    assert len(project.resources()) == 1
    assert attach_jobs(sim) == [f"{web1}/iso/{rescue}"]


def test_a_twin_added_next_to_an_existing_attachment_fails_and_the_original_stays(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare_and_up({"a": {"vm_uuid": web1, "iso_uuid": rescue}})
    sim.clear_journal()
    project.declare({"a": {"vm_uuid": web1, "iso_uuid": rescue}, "b": {"vm_uuid": web1, "iso_uuid": rescue}})

    up = project.up(check=False)

    # Twin detection assumes the engine diffs the existing "a" before it creates "b": the real one does.
    assert up.code != 0
    assert "is declared by two IsoAttachment resources in this deployment" in up.output
    assert set(project.resources()) == {"a"}
    assert writes(sim) == []


def test_an_iso_attached_before_the_stack_existed_is_adopted_without_a_job(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    third = sim.cdroms(web1)[2]["uuid"]
    body = {"systemTags": [f"cdromUuid::{third}"]}
    assert sim.zstack("POST", f"vm-instances/{web1}/iso/{rescue}", json=body)[0] == 200
    sim.clear_journal()
    project.declare({"adopted": {"vm_uuid": web1, "iso_uuid": rescue}})

    up = project.up()

    assert f"adopted {named('ISO', rescue, 'rescue.iso')} on {named('VM', web1, 'web-1')}" in up.stdout
    assert project.outputs()["adopted"]["cdrom_uuid"] == third
    assert writes(sim) == []
    # Adopted means managed: destroy detaches it.
    project.destroy()
    assert iso_slots(sim, web1) == {}


def test_pulumi_import_of_an_iso_attachment_fails_and_writes_nothing(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    assert sim.zstack("POST", f"vm-instances/{web1}/iso/{rescue}")[0] == 200
    sim.clear_journal()

    run = project.pulumi("import", "--yes", TYPE, "imported", f"{web1}/{rescue}", check=False)

    # Import sends Read no properties, so the SDK's host cannot find the provider (pulumi/pulumi#16175).
    assert run.code != 0
    assert "__provider" in run.output
    assert project.resources() == {}
    assert writes(sim) == []
    assert rescue in iso_slots(sim, web1)


def test_get_reads_an_existing_attachment_that_destroy_then_leaves_alone(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    assert sim.zstack("POST", f"vm-instances/{web1}/iso/{rescue}")[0] == 200
    slot = iso_slots(sim, web1)[rescue]
    project.write_program(
        f"""
        seen = IsoAttachment.get("seen", "{web1}/{rescue}")
        pulumi.export("seen", {{"cdrom_uuid": seen.cdrom_uuid, "device_id": seen.device_id}})
        """
    )
    sim.clear_journal()

    project.up()

    assert project.outputs()["seen"] == {"cdrom_uuid": slot, "device_id": 0}
    assert project.resources()["seen"].get("external") is True
    project.destroy()
    assert iso_slots(sim, web1) == {rescue: slot}  # read, never managed: destroy does not detach it
    assert writes(sim) == []
