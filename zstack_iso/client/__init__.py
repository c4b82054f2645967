"""The ZStack REST client (docs/zstack-api.md): one ``ZStackClient`` per process, shared by all its threads.

The facade over four parts, each in its own module, from the wire up:

- ``transport.py``: the pooled HTTP session, retries of reads, and the one place that turns an answer into a
  ``ZStackError``;
- ``auth.py``: the account (one session per process and account, re-login on ``ID.1001``) or the AccessKey
  (a signature on every request);
- ``queries.py``: reads and typed inventories;
- ``jobs.py``: the job protocol: submit, poll, lost answers, idempotency keys, resubmit-once, and settling a
  lost result by the VM's state.

Settings are checked once, by ``zstack_iso.config.ZStackSettings``; the client trusts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import DEFAULT_JOB_TIMEOUT, PollPolicy, ZStackSettings
from ..models import Image, VmInstance
from .auth import Auth, access_key_signature, forget_shared_sessions, http_date
from .jobs import IsoJobs, Jobs, OnResubmit, stable_job_uuid
from .queries import Queries
from .transport import Transport

__all__ = [
    "DEFAULT_JOB_TIMEOUT",
    "PollPolicy",
    "ZStackClient",
    "ZStackSettings",
    "access_key_signature",
    "forget_shared_sessions",
    "http_date",
    "stable_job_uuid",
]


class ZStackClient:
    """A thread-safe client for one ZStack management node.

    ``ZStackClient(settings)`` with ``ZStackSettings``, or ``ZStackClient(endpoint, **arguments)`` with the
    arguments of ``ZStackSettings.of``: ``endpoint`` is a base URL such as ``http://127.0.0.1:8080`` or
    ``https://zstack.example.com/zstack`` (the context path defaults to ``/zstack``, and ``/v1`` is added, §0).
    Give exactly one way to authenticate: ``account_name`` and ``account_password``, ``access_key_id`` and
    ``access_key_secret``, or ``session_uuid``. A bad argument raises ZStackError ``CLIENT.CONFIG``.

    ``auth``, ``queries`` and ``jobs`` are the parts behind the methods, for calls the facade does not offer.
    """

    def __init__(self, settings: ZStackSettings | str, /, **arguments: Any) -> None:
        if not isinstance(settings, ZStackSettings):
            settings = ZStackSettings.of(settings, **arguments)
        elif arguments:
            raise TypeError("give ZStackSettings or an endpoint with keyword arguments, not both")
        self.settings = settings
        self._closed = False
        self._transport = Transport(settings)
        self.auth = Auth(settings, self._transport)
        self.queries = Queries(self._transport, self.auth, settings.job_timeout)
        self.jobs = Jobs(settings, self._transport, self.auth, self.queries)
        self._isos = IsoJobs(self.jobs, self.queries, self._transport)

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint

    @property
    def api_url(self) -> str:
        return self.settings.api_url

    @property
    def verify(self) -> bool | str:
        return self.settings.verify

    @property
    def job_timeout(self) -> float:
        return self.settings.job_timeout

    def __repr__(self) -> str:
        return f"ZStackClient({self.endpoint!r}, {self.auth!r})"

    def close(self, *, logout: bool = True) -> None:
        """Release the client. The shared session is logged out when its last client closes
        (``logout=False`` leaves it cached for later clients of this process)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.auth.close(logout=logout)
        finally:
            self._transport.close()

    def __enter__(self) -> ZStackClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reads ----------------------------------------------------------------------------------------------------

    def query(
        self,
        resource: str,
        *conditions: str,
        limit: int | None = None,
        start: int | None = None,
        sort: str | None = None,
        fields: Sequence[str] | None = None,
        **equals: Any,
    ) -> list[dict[str, Any]]:
        """A ZStack query (§4.2), e.g. ``query("vm-instances", "state=Running", name="web-1")``.

        ``conditions`` are raw ``q`` strings (``field<op>value``); keyword arguments are equality
        conditions with snake_case names (``media_type="ISO"`` → ``q=mediaType=ISO``; a list means IN,
        None ``is null``). ``sort`` is ``+field`` or ``-field``. Returns the raw inventories.
        """
        return self.queries.query(resource, *conditions, limit=limit, start=start, sort=sort, fields=fields, **equals)

    def query_vms(self, *conditions: str, **equals: Any) -> list[VmInstance]:
        """QueryVmInstance (§4.1), e.g. ``query_vms(name="web-1")``."""
        return self.queries.query_as(VmInstance, "vm-instances", conditions, equals)

    def query_images(self, *conditions: str, **equals: Any) -> list[Image]:
        """QueryImage (§4.1, §8), e.g. ``query_images(name="rescue.iso", media_type="ISO")``."""
        return self.queries.query_as(Image, "images", conditions, equals)

    def get_vm(self, vm_uuid: str) -> VmInstance | None:
        """The VM, or None when the node has no such VM (§4.1). A Destroyed VM is still returned (§13)."""
        return self.queries.get_vm(vm_uuid)

    def get_image(self, image_uuid: str) -> Image | None:
        return self.queries.get_image(image_uuid)

    def wait_for_settled_state(
        self, vm_uuid: str, timeout: float | None = None, *, deadline: float | None = None
    ) -> VmInstance | None:
        """Wait while the VM is in a state that ends by itself (``TRANSITIONAL_VM_STATES``: Starting,
        Stopping, Migrating, Created, …, §13, §5.2 step 4).

        Returns the VM once it is not transitional: ISO-operable (Running, Stopped, Paused), gone
        (Destroyed, Expunging), or a state that needs a person (Unknown, Crashed, one this client does not
        know); None when the VM does not exist. Waits until ``deadline`` (a ``time.monotonic()`` value, so
        that a caller can share one deadline across several steps) or for ``timeout`` seconds, whichever
        ends first; ``job_timeout`` when neither is given. The VM is read at least once, even when the
        deadline has passed. Raises CLIENT.TIMEOUT naming the VM and its state.
        """
        return self.queries.wait_for_settled_state(vm_uuid, timeout, deadline=deadline)

    # -- ISO jobs -------------------------------------------------------------------------------------------------

    def attach_iso(
        self,
        vm_uuid: str,
        iso_uuid: str,
        cdrom_uuid: str | None = None,
        *,
        timeout: float | None = None,
        job_uuid: str | None = None,
    ) -> VmInstance:
        """AttachIsoToVmInstance (§5): one job, into ``cdrom_uuid`` or the empty CD-ROM with the lowest device id.

        Returns the VM inventory after the attach. A lost result is settled by reading the VM: the
        attach took effect when the ISO is in one of its CD-ROMs. ``job_uuid`` (see ``stable_job_uuid``)
        makes the call idempotent across processes: if the node already has that job (a crashed process
        submitted the same attach), the client waits for it instead of submitting a second one.
        """
        return self._isos.attach(vm_uuid, iso_uuid, cdrom_uuid, timeout=timeout, job_uuid=job_uuid)

    def detach_iso(
        self, vm_uuid: str, iso_uuid: str, *, timeout: float | None = None, job_uuid: str | None = None
    ) -> VmInstance:
        """DetachIsoFromVmInstance (§6): one job; ``isoUuid`` goes in the query string; detaching an ISO that is
        not attached succeeds (§6.2 step 4). A lost result is settled by reading the VM. ``job_uuid``: as
        for ``attach_iso``."""
        return self._isos.detach(vm_uuid, iso_uuid, timeout=timeout, job_uuid=job_uuid)

    def ensure_iso_attached(
        self, seen: VmInstance, iso_uuid: str, cdrom_uuid: str | None = None, *, on_resubmit: OnResubmit | None = None
    ) -> VmInstance:
        """Put the ISO into the VM ``seen`` (read just before, without the ISO) and return the VM as the node left it.

        The whole intent, where ``attach_iso`` is one job: the job UUID is derived from ``seen`` (a run after a
        crash finds its predecessor's job, §3.2); a failed job counts as done when the ISO is in the VM
        afterwards (a race, §10, or a lost answer); a job the node lost (a restart, §3.4) is submitted once
        more, after ``on_resubmit()``. Otherwise raises the job's ZStackError, with ``vm`` the VM read after it.
        """
        return self._isos.ensure_attached(seen, iso_uuid, cdrom_uuid, on_resubmit=on_resubmit)

    def ensure_iso_detached(
        self, seen: VmInstance, iso_uuid: str, *, on_resubmit: OnResubmit | None = None
    ) -> VmInstance | None:
        """Take the ISO out of the VM ``seen`` and return the VM as the node left it (None if it vanished);
        as ``ensure_iso_attached``, a failed job counts as done when the ISO is in no CD-ROM afterwards."""
        return self._isos.ensure_detached(seen, iso_uuid, on_resubmit=on_resubmit)
