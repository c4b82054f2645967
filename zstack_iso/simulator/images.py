"""The image APIs (§14; [Z] image/ImageBase.java): DeleteImage, ExpungeImage, RecoverImage, ChangeImageState.

They run in the image's own queue (`image:<uuid>`), not a VM's."""

from __future__ import annotations

import time
from typing import Any

from .errors import ApiError, argerr, invalid_value, operr, require, success_if_not_existing
from .java import java_trim
from .jobs import Apply, Job
from .records import IMAGE_FIELDS, Image, ImageBackupStorageRef, render
from .rules import Rules
from .sessions import Auth


def deleted_refs(image: Image, bs_uuids: list[str] | None, verb: str) -> list[ImageBackupStorageRef]:
    """The refs Recover/Expunge work on (ImageBase.java:745-782 and 803-846 @ 5a29293)."""
    refs = image.backupStorageRefs
    who = f"the image[uuid:{image.uuid}, name:{image.name}]"
    if not bs_uuids:
        chosen = [r for r in refs if r.status == "Deleted"]
        if not chosen:
            raise operr(f"{who} is not deleted on any backup storage")  # SYS.1006
        return chosen
    chosen = []
    for bs_uuid in bs_uuids:  # SYS.1007
        ref = next((r for r in refs if r.backupStorageUuid == bs_uuid), None)
        if ref is None:
            raise argerr(f"{who} is not on the backup storage[uuid:{bs_uuid}]")
        if ref.status != "Deleted":
            if verb == "recover":
                raise argerr(f"{who}'s status[{ref.status}] is not Deleted on the backup storage[uuid:{bs_uuid}]")
            raise argerr(f"{who} is not deleted on the backup storage[uuid:{bs_uuid}]")
        chosen.append(ref)
    return chosen


class ImageRules(Rules):
    def _check_backup_storage_uuids(self, bs_uuids: list[str] | None) -> None:
        """@APIParam(required=false, nonempty=true, resourceType=BackupStorageVO) on a list (ApiMessageParamValidator
        .java:63-68, PortApiValidator.java:40-66 @ 5a29293)."""
        if bs_uuids is None:
            return
        if not bs_uuids:
            raise argerr("field[backupStorageUuids] must be a nonempty list")  # SYS.1007
        missing = [u for u in bs_uuids if u not in self.inventory.backup_storages]
        if missing:
            raise ApiError(
                "SYS.1003",
                f"invalid field[backupStorageUuids], resource[uuids:[{', '.join(missing)}], type:BackupStorageVO] "
                f"not found",
            )

    def delete(self, job: Job, auth: Auth, image_uuid: str, bs_uuids: list[str] | None = None) -> None:
        """DeleteImage (APIDeleteImageMsg.java:15-25; ImageBase.java:957-1031 and ImageDeletionMsg L364-549 @
        5a29293), with the default deletion policy Delay (conf/globalConfig/image.xml:4-15).

        The image is first detached from every VM holding it, whatever the VM's state and outside its queue (the
        internal DetachIsoFromVmInstanceMsg, VmInstanceBase.java:4507-4522): isoUuid and isoInstallPath are
        cleared, protocol kept. Then its refs (those on `bs_uuids`, else all) and, once no ref is left that is not
        Deleted, the image read back with status Deleted; its state is unchanged. An image without refs, or whose
        refs are all Creating/Downloading, is removed at once and never detached (L367-391)."""
        image_uuid = java_trim(image_uuid)  # APIMessage.java:204-226

        def intercept() -> tuple[str, None]:
            if image_uuid not in self.inventory.images:  # successIfResourceNotExisting (APIDeleteImageMsg.java:22)
                success_if_not_existing(image_uuid)
            self._check_backup_storage_uuids(bs_uuids)
            self.identity.check(auth)
            return f"image:{image_uuid}", None

        self.jobs.submit(job, intercept, lambda _: lambda: self._delete_now(image_uuid, bs_uuids))

    def _delete_now(self, image_uuid: str, bs_uuids: list[str] | None) -> dict[str, Any]:
        inv = self.inventory
        image = inv.images.get(image_uuid)
        if image is None:
            return {}  # deleted meanwhile
        refs = image.backupStorageRefs
        now = time.time()
        if not refs or all(r.status in ("Creating", "Downloading") for r in refs):
            del inv.images[image_uuid]
            if refs or image.status != "Ready":
                # a hard delete: the CD-ROM's isoUuid foreign key is ON DELETE SET NULL (VmCdRomVO.java:27-37)
                for cd in inv.cdroms.values():
                    if cd.isoUuid == image_uuid:
                        cd.isoUuid, cd.lastOpDate = None, now
            return {}
        for cd in inv.cdroms.values():  # IsoOperator.getVmUuidByIsoUuid: any VM, any state
            if cd.isoUuid == image_uuid:
                cd.isoUuid = cd.isoInstallPath = None
                cd.lastOpDate = now
        for ref in refs:  # Delay: the ref stays, Deleted (ImageBase.java:493)
            if bs_uuids is None or ref.backupStorageUuid in bs_uuids:
                ref.status, ref.lastOpDate = "Deleted", now
        if all(r.status == "Deleted" for r in refs):  # ImageBase.java:525-531
            image.status, image.lastOpDate = "Deleted", now
        return {}  # APIDeleteImageEvent has no mapping

    def expunge(self, job: Job, auth: Auth, image_uuid: str, bs_uuids: list[str] | None = None) -> None:
        """ExpungeImage (APIExpungeImageMsg.java:17-31; ImageBase.java:803-868 and ExpungeImageMsg L285-347 @
        5a29293): the Deleted refs are removed; with no ref left the image is gone from queries. CD-ROMs are not
        touched (the ImageVO is soft-deleted)."""
        image_uuid = java_trim(image_uuid)
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            inv.find_image(image_uuid, "imageUuid")  # SYS.1003
            self._check_backup_storage_uuids(bs_uuids)
            self.identity.check(auth)
            return f"image:{image_uuid}", None

        def queued(_: None) -> Apply:
            image = inv.find_image(image_uuid, "imageUuid")
            chosen = deleted_refs(image, bs_uuids, "expunge")

            def apply() -> dict[str, Any]:
                image.backupStorageRefs = [r for r in image.backupStorageRefs if r not in chosen]
                if not image.backupStorageRefs:
                    inv.images.pop(image_uuid, None)
                return {}  # APIExpungeImageEvent has no mapping

            return apply

        self.jobs.submit(job, intercept, queued)

    def recover(self, job: Job, auth: Auth, image_uuid: str, bs_uuids: list[str] | None = None) -> None:
        """RecoverImage (APIRecoverImageMsg.java:16-26; ImageBase.java:745-801 @ 5a29293): the Deleted refs (or those
        named) and the image become Ready; state unchanged; the ISO is attached nowhere again."""
        image_uuid = java_trim(image_uuid)
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            inv.find_image(image_uuid, "imageUuid")  # SYS.1003
            self.identity.check(auth)
            return f"image:{image_uuid}", None

        def queued(_: None) -> Apply:
            image = inv.find_image(image_uuid, "imageUuid")
            chosen = deleted_refs(image, bs_uuids, "recover")

            def apply() -> dict[str, Any]:
                now = time.time()
                for ref in chosen:
                    ref.status, ref.lastOpDate = "Ready", now
                image.status, image.lastOpDate = "Ready", now
                return {"inventory": render(image, IMAGE_FIELDS)}

            return apply

        self.jobs.submit(job, intercept, queued)

    def change_state(self, job: Job, auth: Auth, image_uuid: str, state_event: str | None) -> None:
        """ChangeImageState (APIChangeImageStateMsg.java:16-27; ImageBase.java:943-955 @ 5a29293): only `state`
        changes; CD-ROMs that hold the image keep it; a Deleted image may change too."""
        image_uuid = java_trim(image_uuid)
        if isinstance(state_event, str):
            state_event = java_trim(state_event)
        inv = self.inventory

        def intercept() -> tuple[str, None]:
            inv.find_image(image_uuid, "uuid")  # SYS.1003
            require(state_event, "stateEvent")  # SYS.1007
            if state_event not in ("enable", "disable"):  # validValues, case-sensitive: SYS.1007
                raise invalid_value("stateEvent", ("enable", "disable"), state_event)
            self.identity.check(auth)
            return f"image:{image_uuid}", None

        def queued(_: None) -> Apply:
            image = inv.find_image(image_uuid, "uuid")

            def apply() -> dict[str, Any]:
                image.state = "Disabled" if state_event == "disable" else "Enabled"
                image.lastOpDate = time.time()
                return {"inventory": render(image, IMAGE_FIELDS)}

            return apply

        self.jobs.submit(job, intercept, queued)
