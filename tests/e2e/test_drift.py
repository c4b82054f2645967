"""Changes made by hand outside Pulumi, as the real CLI shows and repairs them.

A plain `pulumi preview` (no --refresh) shows each drift as a replacement with the provider's warning,
naming the VM and the ISO; `pulumi up` repairs it; `pulumi refresh` accepts it.
"""

from __future__ import annotations

import os
import re

from devkit import PROJECT_ROOT
from tests.e2e.conftest import Project, attach_jobs, detach_jobs
from tests.support import iso_slots, named, writes

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "drift-preview.txt"


def _detach_by_hand(project: Project, vm: str, iso: str) -> None:
    status, answer = project.sim.zstack("DELETE", f"vm-instances/{vm}/iso", params={"isoUuid": iso})
    assert status == 200, answer


def _attach_by_hand(project: Project, vm: str, iso: str, cdrom: str) -> None:
    body = {"systemTags": [f"cdromUuid::{cdrom}"]}
    status, answer = project.sim.zstack("POST", f"vm-instances/{vm}/iso/{iso}", json=body)
    assert status == 200, answer


def _replaced(run_output: str, name: str) -> bool:
    return bool(
        re.search(rf"\+-\s+pulumi-python:dynamic/zstack:IsoAttachment\s+{re.escape(name)}\s+replace", run_output)
    )


def test_an_iso_detached_by_hand_shows_in_a_plain_preview_and_up_attaches_it_again(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare_and_up({"tools": {"vm_uuid": web1, "iso_uuid": rescue}})
    slot = iso_slots(sim, web1)[rescue]
    _detach_by_hand(project, web1, rescue)
    sim.clear_journal()

    preview = project.preview()

    where = f"{named('ISO', rescue, 'rescue.iso')} on {named('VM', web1, 'web-1')}"
    assert (
        f"warning: {where}: detached outside Pulumi (was in CD-ROM {slot[:8]}… (device 0)); it will be attached "
        in (preview.stdout)
    )
    assert _replaced(preview.stdout, "tools")
    assert "+-1 to replace" in preview.stdout
    assert writes(sim) == []
    if os.environ.get("ZSTACK_ISO_WRITE_EXAMPLES") == "1":  # `make docs-examples`
        EXAMPLE.parent.mkdir(parents=True, exist_ok=True)
        EXAMPLE.write_text(f"$ pulumi preview\n{preview.stdout}")

    up = project.up()

    assert "+-1 replaced" in up.stdout
    assert iso_slots(sim, web1) == {rescue: slot}
    assert attach_jobs(sim) == [f"{web1}/iso/{rescue}"]
    project.preview("--expect-no-changes")


def test_an_iso_moved_by_hand_shows_in_a_plain_preview_and_refresh_accepts_the_new_cdrom(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare_and_up({"tools": {"vm_uuid": web1, "iso_uuid": rescue}})
    first, _, third = (c["uuid"] for c in sim.cdroms(web1))
    _detach_by_hand(project, web1, rescue)
    _attach_by_hand(project, web1, rescue, third)
    sim.clear_journal()

    preview = project.preview()

    assert f"moved outside Pulumi from CD-ROM {first[:8]}… (device 0) to CD-ROM {third[:8]}… (device 2)" in (
        preview.stdout
    )
    assert _replaced(preview.stdout, "tools")

    project.refresh()

    # The CLI lists the refreshed attachment as "unchanged", but its state follows the node now.
    state = project.resources()["tools"]
    assert state["outputs"]["cdrom_uuid"] == third and state["outputs"]["device_id"] == 2
    # The program pins no CD-ROM, so the refreshed state satisfies it: nothing to do, and no flapping.
    project.preview("--expect-no-changes")
    project.refresh("--expect-no-changes")
    project.preview("--expect-no-changes")
    assert writes(sim) == []


def test_an_iso_detached_by_hand_is_dropped_by_refresh_and_the_next_preview_plans_one_attach(project: Project):
    sim = project.sim
    web1, rescue = sim.vm("web-1"), sim.image("rescue.iso")
    project.declare_and_up({"tools": {"vm_uuid": web1, "iso_uuid": rescue}})
    _detach_by_hand(project, web1, rescue)
    sim.clear_journal()

    refresh = project.refresh()

    assert "- 1 deleted" in refresh.stdout
    assert "tools" not in project.resources()
    for _ in range(2):  # the same plan each time: the program still declares it
        preview = project.preview()
        assert "+ 1 to create" in preview.stdout
    assert writes(sim) == []


def test_a_vm_destroyed_by_hand_shows_in_a_plain_preview_and_refresh_drops_its_attachment(project: Project):
    sim = project.sim
    web1, web2, rescue = sim.vm("web-1"), sim.vm("web-2"), sim.image("rescue.iso")
    project.declare_and_up(
        {"gone": {"vm_uuid": web1, "iso_uuid": rescue}, "kept": {"vm_uuid": web2, "iso_uuid": rescue}}
    )
    assert sim.zstack("DELETE", f"vm-instances/{web1}")[0] == 200
    sim.clear_journal()

    preview = project.preview()

    assert f"{named('VM', web1, 'web-1')}: the VM is Destroyed; the attachment will be replaced" in preview.stdout
    assert _replaced(preview.stdout, "gone")
    assert not _replaced(preview.stdout, "kept")

    project.refresh()

    assert set(project.resources()) == {"kept"}
    assert writes(sim) == []
    # Removing the declaration is what a user does next; nothing is left to detach.
    project.declare({"kept": {"vm_uuid": web2, "iso_uuid": rescue}})
    project.preview("--expect-no-changes")
    assert detach_jobs(sim) == []


def test_the_readme_quotes_a_real_preview_of_a_drifted_stack():
    readme = (PROJECT_ROOT / "README.md").read_text()
    quoted = EXAMPLE.read_text()
    assert quoted.strip() in readme, "README.md is out of date: run `make docs-examples`"
