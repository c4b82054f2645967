"""A stack's life through the real CLI: preview, up, outputs, no-op runs, destroy."""

from __future__ import annotations

import shutil

from devkit import PROJECT_ROOT
from tests.e2e.conftest import Project, attach_jobs, detach_jobs
from tests.support import iso_slots, requests_to, writes


def test_preview_writes_nothing_and_up_attaches_what_the_example_program_declares(project: Project):
    sim = project.sim
    shutil.copy(PROJECT_ROOT / "__main__.py", project.dir / "__main__.py")  # the example program, as shipped
    sim.clear_journal()

    preview = project.preview()

    assert "+ 5 to create" in preview.stdout  # the stack and the demo's four attachments
    assert writes(sim) == []

    up = project.up()

    assert "+ 5 created" in up.stdout
    web1, web2, db1 = sim.vm("web-1"), sim.vm("web-2"), sim.vm("db-1")
    ubuntu, virtio, rescue = (
        sim.image("ubuntu-22.04-server.iso"),
        sim.image("virtio-win-0.1.240.iso"),
        sim.image("rescue.iso"),
    )
    assert set(iso_slots(sim, web1)) == {ubuntu, virtio}
    assert set(iso_slots(sim, web2)) == {rescue}
    assert set(iso_slots(sim, db1)) == {ubuntu}
    # `pulumi stack output` and the node agree on where every ISO is.
    outputs = project.outputs()
    for key, (vm, iso) in {
        "web-1/ubuntu-22.04-server.iso": (web1, ubuntu),
        "web-1/virtio-win-0.1.240.iso": (web1, virtio),
        "web-2/rescue.iso": (web2, rescue),
        "db-1/ubuntu-22.04-server.iso": (db1, ubuntu),
    }.items():
        assert outputs[key]["id"] == f"{vm}/{iso}"
        assert outputs[key]["cdrom_uuid"] == iso_slots(sim, vm)[iso]
    # The pinned one went where the program said: device 2 of web-1.
    assert outputs["web-1/virtio-win-0.1.240.iso"]["device_id"] == 2
    assert len(attach_jobs(sim)) == 4


def test_a_preview_reads_each_vm_once_when_a_program_declares_its_attachments_apart(project: Project):
    sim = project.sim
    web1, db1 = sim.vm("web-1"), sim.vm("db-1")
    ubuntu, virtio = sim.image("ubuntu-22.04-server.iso"), sim.image("virtio-win-0.1.240.iso")
    # A loop over ISOs, then VMs: the engine diffs web-1, db-1, web-1, db-1.
    project.declare_and_up(
        {f"{iso_name}-{vm_name}": {"vm_uuid": vm, "iso_uuid": iso}
         for iso_name, iso in (("ubuntu", ubuntu), ("virtio", virtio))
         for vm_name, vm in (("web-1", web1), ("db-1", db1))}
    )  # fmt: skip
    sim.clear_journal()

    project.preview("--expect-no-changes")

    reads = sorted(r["path"].rsplit("/", 1)[-1] for r in requests_to(sim, "GET", "/vm-instances/"))
    assert reads == sorted([web1, db1])


def test_a_second_up_changes_nothing_and_preview_expects_no_changes(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare_and_up({"rescue": {"vm_uuid": web1, "iso_uuid": rescue}})
    sim.clear_journal()

    assert "2 unchanged" in project.up().stdout  # the stack and the attachment
    project.preview("--expect-no-changes")

    assert writes(sim) == []


def test_destroy_detaches_and_a_second_destroy_has_nothing_to_do(project: Project):
    sim = project.sim
    web1, web2, rescue = sim.vm("web-1"), sim.vm("web-2"), sim.image("rescue.iso")
    project.declare_and_up({"a": {"vm_uuid": web1, "iso_uuid": rescue}, "b": {"vm_uuid": web2, "iso_uuid": rescue}})
    sim.clear_journal()

    first = project.destroy()

    assert "- 3 deleted" in first.stdout
    assert iso_slots(sim, web1) == {} and iso_slots(sim, web2) == {}
    assert sorted(detach_jobs(sim)) == sorted([f"{web1}/iso?isoUuid={rescue}", f"{web2}/iso?isoUuid={rescue}"])
    assert project.resources() == {}
    sim.clear_journal()

    second = project.destroy()

    assert second.code == 0
    assert writes(sim) == []


def test_destroy_after_the_vms_were_destroyed_by_hand_succeeds_and_empties_the_stack(project: Project):
    sim = project.sim
    web1, web2, rescue = sim.vm("web-1"), sim.vm("web-2"), sim.image("rescue.iso")
    project.declare_and_up({"a": {"vm_uuid": web1, "iso_uuid": rescue}, "b": {"vm_uuid": web2, "iso_uuid": rescue}})
    for vm in (web1, web2):
        assert sim.zstack("DELETE", f"vm-instances/{vm}")[0] == 200  # DestroyVmInstance, outside Pulumi
    sim.clear_journal()

    run = project.destroy()

    assert "- 3 deleted" in run.stdout
    assert "the VM is Destroyed; nothing to detach" in run.stdout
    assert detach_jobs(sim) == []
    assert project.resources() == {}
