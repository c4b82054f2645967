"""The job protocol (§3): every asynchronous call from submit to result, and the ISO jobs built on it.

- Every submit carries an ``X-Job-UUID``: a random one, or an idempotency key derived from the call
  (``stable_job_uuid``), so that a process repeating a crashed process's call finds that job (§3.2).
- The job is polled on the configured endpoint (§3.3, §3.4), early and then less often (``PollPolicy``), until
  the sooner of ``job_timeout`` and the node's ``apiTimeout``; a poll without an answer is repeated until then,
  never reported as a failure before it. Once a few jobs of a kind have succeeded, the polls before such a job
  could end are skipped (``durations.py``); a fixed interval never learns.
- A submit without an answer is never repeated blindly: the job is polled by its UUID first, and submitted once
  more with the same UUID only if the node does not know it (a duplicate is refused, §3.2). A job whose result
  is lost is settled by reading the VM's state.
- ``IsoJobs.ensure_attached`` and ``ensure_detached`` are the provider's attach and detach: the key comes from
  the VM as the caller read it, the node's state decides what a failed job did, and a job the node lost (a
  restart, §3.4) is submitted once more.
"""

from __future__ import annotations

import logging
import re
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..config import ZStackSettings
from ..errors import (
    CLIENT_CONFIG,
    CLIENT_HTTP,
    CLIENT_JOB_LOST,
    CLIENT_TIMEOUT,
    SYS_OPERATION_FAILED,
    ZStackError,
    hint_for,
)
from ..models import VmInstance
from .auth import Auth
from .durations import JobDurations, next_delay
from .queries import VM_STATE_POLLING, Queries
from .transport import NoAnswer, Transport, quote_segment

log = logging.getLogger("zstack_iso.client")

_ODD_POLL_ANSWERS_TOLERATED = 2
_JOB_NAMESPACE = uuidlib.UUID("6f1c2a57-3b0e-4d8a-9a61-2f5e7c9d0b14")


def stable_job_uuid(*parts: str) -> str:
    """A deterministic X-Job-UUID for one logical call, e.g. ``stable_job_uuid("attach", vm, iso)``.

    Two processes making the same call get the same job UUID, so the second finds the first's job instead
    of submitting again (§3.2). An older, unrelated job with the same UUID is told apart by the VM's state.
    """
    return uuidlib.uuid5(_JOB_NAMESPACE, "\x1f".join(str(p).lower() for p in parts)).hex


@dataclass(frozen=True)
class _Call:
    """One asynchronous API call, as submitted (and, at most once more, resubmitted)."""

    method: str
    path: str
    params: Mapping[str, Any] | None
    json_body: Any
    api: str
    request: str  # method and path as errors show them
    ambiguous_codes: tuple[str, ...]  # failures that, after a lost answer, may be our own first submit's work
    kind: str  # what durations are learned by: the API, for ISO jobs with the VM's state


@dataclass
class _Job:
    call: _Call
    uuid: str
    started: float
    deadline: float
    timeout_source: str
    accepted: bool = False  # the node told us it knows the job (202, a poll, or a duplicate refusal)
    resubmitted: bool = False
    uncertain: bool = False  # a submit went unanswered: the job may have run
    keyed: bool = False  # the caller chose the job UUID (an idempotency key)
    maybe_old: bool = False  # a keyed job UUID that may name an earlier call's job: verify by state
    polls: int = 0
    running_seen: bool = False  # a poll answered 202
    odd_answers: int = 0  # poll answers that are no job state (e.g. a plain-text 500)
    unanswered_polls: int = 0  # polls that got no answer even after the adapter's retries
    last_no_answer: str | None = None  # why the latest poll got no answer; None once one is answered

    @property
    def api(self) -> str:
        return self.call.api

    @property
    def request(self) -> str:
        return self.call.request


class _JobOutcomeUnknown(Exception):
    """The job's result cannot be read any more; the caller settles by reading state (§3.4 404)."""

    def __init__(self, job: _Job, reason: str, error: ZStackError | None = None) -> None:
        super().__init__(reason)
        self.job = job
        self.reason = reason
        self.error = error
        self.reused = job.maybe_old


class Jobs:
    """Runs asynchronous calls to their end, and settles a call whose result is lost by the VM's state."""

    def __init__(self, settings: ZStackSettings, transport: Transport, auth: Auth, queries: Queries) -> None:
        self._transport = transport
        self._auth = auth
        self._queries = queries
        self._job_timeout = settings.job_timeout
        self._poll_policy = settings.poll_policy
        self._settle_timeout = settings.settle_timeout
        self.durations = JobDurations()  # one client, one node: learned per kind of job

    def run(
        self,
        method: str,
        path: str,
        *,
        api: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
        ambiguous_codes: Iterable[str] = (),
        job_uuid: str | None = None,
        kind: str | None = None,
    ) -> dict:
        """Submit an asynchronous API (§3) and wait for its job. Returns the job's result body.

        ``kind`` names the jobs whose durations are learned together (default: the API).
        Raises ZStackError, or _JobOutcomeUnknown when the result is lost and only the state can tell.
        """
        request = self._transport.request_line(method, path)
        if params:
            request += "?" + "&".join(f"{k}={v}" for k, v in params.items())
        call = _Call(method, path, params, json_body, api, request, tuple(ambiguous_codes), kind or api)
        key = self._key(job_uuid) if job_uuid else None
        started = time.monotonic()
        limit = self._job_timeout if timeout is None else float(timeout)

        def attempt(sid: str | None, first: bool) -> dict:
            job = _Job(
                call,
                # The caller's UUID once: after ID.1001 it names the refused job, so a fresh one follows.
                uuid=key if key and first else uuidlib.uuid4().hex,
                started=time.monotonic(),
                deadline=started + limit,
                timeout_source=f"job timeout {limit:g} s",
                keyed=bool(key) and first,
            )
            return self._wait(job, sid)

        # §1.5: an invalid session fails the job in the interceptors, before anything ran.
        return self._auth.run(attempt, api=api, again="resubmitting")

    def run_settled(
        self,
        method: str,
        path: str,
        *,
        api: str,
        vm_uuid: str,
        done: Callable[[VmInstance | None], bool],
        expected: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
        job_uuid: str | None = None,
        kind: str | None = None,
    ) -> tuple[dict | None, VmInstance | None]:
        """An async call whose lost result is settled by the VM's state: (result body, None) or
        (None, VM read while settling); ``done`` tells from the VM whether the call's work is done.

        ``job_uuid`` (32 hex) is an idempotency key: when the node already knows that job (an earlier
        submit of the same call, e.g. by a process that crashed), the client waits for that job instead of
        submitting again, then reads the VM; if the work is not done (the job was an older, unrelated one)
        it submits once with a fresh job UUID.
        """
        key = job_uuid
        while True:
            try:
                body = self.run(
                    method,
                    path,
                    api=api,
                    params=params,
                    json_body=json_body,
                    timeout=timeout,
                    ambiguous_codes=(SYS_OPERATION_FAILED,),
                    job_uuid=key,
                    kind=kind,
                )
                return body, None
            except _JobOutcomeUnknown as lost:
                if not lost.reused:
                    return None, self._settle(lost, vm_uuid, done, expected)
                vm = self._queries.get_vm(vm_uuid)
                if done(vm):
                    log.info("job %s (%s): an earlier submit did the work: %s", lost.job.uuid, api, expected)
                    return None, vm
                log.info("job %s (%s) named an older call; submitting with a new job UUID", lost.job.uuid, api)
                key = None

    # -- one job: submit, then poll ---------------------------------------------------------------------------

    def _wait(self, job: _Job, sid: str | None) -> dict:
        try:
            result = self._submit(job, sid)
            if result is not None:
                return result
        except NoAnswer as exc:
            # Lost response: never submit again blindly; ask the node about the job first.
            job.uncertain = True
            job.maybe_old = job.keyed
            log.warning(
                "no answer to %s (%s, job %s): %s; polling the job before anything else",
                job.api,
                job.request,
                job.uuid,
                exc.reason,
            )
        policy = self._poll_policy
        while True:
            remaining = job.deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout_error(job)
            # Asked before every poll: a job in flight gains from jobs of its kind that end meanwhile.
            plan = self.durations.plan(job.call.kind, policy) if policy.learn else None
            time.sleep(min(next_delay(policy, time.monotonic() - job.started, plan), remaining))
            result = self._poll(job, sid)
            if result is not None:
                return result

    def _submit(self, job: _Job, sid: str | None) -> dict | None:
        """Send the call. Returns the result of a synchronous answer, None once the job is accepted.

        Raises NoAnswer(sent=True) when the answer was lost, ZStackError when the node refused.
        """
        call, transport = job.call, self._transport
        headers = {"X-Job-UUID": job.uuid, **self._auth.headers(call.method, call.path, sid)}
        try:
            resp = transport.send(call.method, call.path, params=call.params, json_body=call.json_body, headers=headers)
        except NoAnswer as exc:
            if not exc.sent:
                raise transport.no_answer_error(exc, job.api, job.request, job.uuid) from None
            raise
        if resp.status_code == 202:
            self._accept(job, transport.json_object(resp, job.api, job.request, job.uuid))
            return None
        if resp.status_code in (200, 204):
            return transport.json_object(resp, job.api, job.request, job.uuid)
        if resp.status_code == 400 and "duplicate job uuid" in resp.text.lower():
            # §3.2: the node refuses a reused X-Job-UUID: the job it names was accepted before.
            job.maybe_old = job.keyed  # a caller-chosen UUID may name an earlier call's job (a crashed process)
            log.info("job %s (%s): the node already has it; waiting for it", job.uuid, job.api)
            job.accepted = True
            return None
        raise transport.answer_error(resp, job.api, job.request, job.uuid)

    def _accept(self, job: _Job, data: Mapping[str, Any]) -> None:
        job.accepted = True
        location = data.get("location")
        if isinstance(location, str) and "/api-jobs/" in location:
            # §3.3: rewrite onto the configured endpoint (a node behind NAT advertises its inner address).
            advertised = location.split("/api-jobs/", 1)[1].split("?", 1)[0].strip("/")
            if advertised and advertised != job.uuid:
                log.debug("job %s: node assigned job UUID %s", job.uuid, advertised)
                job.uuid = advertised
        api_timeout = data.get("apiTimeout")
        if isinstance(api_timeout, (int, float)) and not isinstance(api_timeout, bool) and api_timeout > 0:
            node_deadline = job.started + api_timeout / 1000.0  # milliseconds (§3.3)
            if node_deadline < job.deadline:
                job.deadline = node_deadline
                job.timeout_source = f"the node's apiTimeout {api_timeout / 1000.0:g} s"
        log.debug("submitted %s as job %s", job.request, job.uuid)

    def _poll(self, job: _Job, sid: str | None) -> dict | None:
        """One poll (§3.4): the job's result once it finished; None while it runs or when the poll went unanswered."""
        path = f"/api-jobs/{quote_segment(job.uuid)}"
        asked = time.monotonic() - job.started
        try:
            # A hanging poll must not carry the call far past its deadline.
            read_timeout = min(self._transport.read_timeout, max(1.0, job.deadline - time.monotonic()))
            resp = self._transport.send(
                "GET", path, headers=self._auth.headers("GET", path, sid), read_timeout=read_timeout
            )
        except NoAnswer as exc:
            # A poll is a GET, safe to repeat: no answer means "not known yet", not a failed job, until the
            # deadline (issue 3: a gateway blip must not report a failure that did not happen).
            job.unanswered_polls += 1
            job.last_no_answer = exc.reason
            log.warning(
                "job %s (%s): poll got no answer from %s: %s; polling again until the deadline in %.0f s",
                job.uuid,
                job.api,
                self._transport.endpoint,
                exc.reason,
                max(0.0, job.deadline - time.monotonic()),
            )
            return None
        job.polls += 1
        job.last_no_answer = None
        if resp.status_code == 202:  # §3.4: still running
            job.accepted = True
            job.running_seen = True
            return None
        if job.maybe_old and (resp.status_code in (200, 503) or (resp.status_code == 404 and job.accepted)):
            # The job may be an earlier call's: whether this call's work is done, only the state can tell.
            raise _JobOutcomeUnknown(job, f"job {job.uuid} may belong to an earlier call and has ended")
        if resp.status_code == 200:
            elapsed = time.monotonic() - job.started
            log.info("job %s (%s) finished in %.3f s after %d polls", job.uuid, job.api, elapsed, job.polls)
            result = self._transport.json_object(resp, job.api, job.request, job.uuid)
            self._learn(job, asked)
            return result
        if resp.status_code == 404:  # §3.4: unknown or expired job
            return self._submit_unknown(job, sid)
        err = self._transport.answer_error(resp, job.api, job.request, job.uuid)
        if err.code == CLIENT_HTTP and job.odd_answers < _ODD_POLL_ANSWERS_TOLERATED:
            # Not a job state at all (§3.4 lists 202/200/503/404): a hiccup, the job is still there.
            job.odd_answers += 1
            log.warning("job %s (%s): poll answered %s; polling again", job.uuid, job.api, err.details)
            return None
        log.info("job %s (%s) failed: %s %s", job.uuid, job.api, err.code, err.details or "")
        if job.uncertain and err.code in job.call.ambiguous_codes:
            # After a lost answer a refusal like "already attached" may be our own first submit's work.
            raise _JobOutcomeUnknown(job, f"the job failed with {err.code} after a lost answer", err)
        raise err

    def _learn(self, job: _Job, asked: float) -> None:
        """Record how long a job took, ``asked`` being when the poll that found it done was sent; only a job
        that ran undisturbed from its own submit tells how long such jobs take."""
        disturbed = job.uncertain or job.resubmitted or job.maybe_old or job.unanswered_polls or job.odd_answers
        if job.accepted and not disturbed and self._poll_policy.learn:
            kind = job.call.kind
            self.durations.record(kind, asked, done_at_first_poll=not job.running_seen)
            log.debug("job %s (%s) found done %.3f s after its submit", job.uuid, kind, asked)

    def _submit_unknown(self, job: _Job, sid: str | None) -> dict | None:
        """The node does not know the job: its record expired, or the lost submit never reached the node."""
        if job.accepted or job.resubmitted:
            raise _JobOutcomeUnknown(job, "the node no longer knows the job (its record expired)")
        # Submit once more with the same X-Job-UUID; a duplicate is refused (§3.2), so the call cannot run twice.
        job.resubmitted = True
        log.info("job %s (%s) is unknown to the node; submitting it once more", job.uuid, job.api)
        try:
            return self._submit(job, sid)
        except NoAnswer as exc:
            log.warning("no answer again to %s (job %s): %s", job.api, job.uuid, exc.reason)
            return None

    def _timeout_error(self, job: _Job) -> ZStackError:
        details = f"job {job.uuid} did not finish within {job.timeout_source}; it may still be running on the node"
        if job.last_no_answer is not None:
            details += (
                f" ({job.unanswered_polls} polls got no answer from {self._transport.endpoint}, "
                f"the last: {job.last_no_answer})"
            )
        return self._transport.error(
            CLIENT_TIMEOUT,
            details,
            api=job.api,
            request=job.request,
            job_uuid=job.uuid,
            hint=hint_for(CLIENT_TIMEOUT, "job" if job.last_no_answer is None else "unanswered"),
        )

    def _key(self, value: str) -> str:
        """A caller-chosen X-Job-UUID: 32 hex characters, dashes allowed (§3.2)."""
        text = value.replace("-", "").lower()
        if not re.fullmatch(r"[0-9a-f]{32}", text):
            raise self._transport.error(CLIENT_CONFIG, f"job_uuid must be 32 hexadecimal characters, got {value!r}")
        return text

    # -- a lost result, settled by the VM's state -------------------------------------------------------------

    def _settle(
        self,
        lost: _JobOutcomeUnknown,
        vm_uuid: str,
        done: Callable[[VmInstance | None], bool],
        expected: str,
    ) -> VmInstance | None:
        """Decide a job whose result is lost by reading the VM until ``done`` or the settle time ends."""
        job = lost.job
        log.warning("job %s (%s): %s; reading VM %s to settle it", job.uuid, job.api, lost.reason, vm_uuid)
        if lost.error is not None:
            # The job did finish, with this error: only an earlier run could have done the work already.
            vm = self._queries.get_vm(vm_uuid)
            if done(vm):
                log.info("job %s (%s) settled by reading the VM: %s", job.uuid, job.api, expected)
                return vm
            raise lost.error
        start = time.monotonic()
        deadline = min(job.deadline, start + self._settle_timeout)
        while True:
            vm = self._queries.get_vm(vm_uuid)
            if done(vm):
                log.info("job %s (%s) settled by reading the VM: %s", job.uuid, job.api, expected)
                return vm
            delay = VM_STATE_POLLING.next_delay(time.monotonic() - start)
            if time.monotonic() + delay > deadline:
                seen = "the VM no longer exists" if vm is None else f"VM state {vm.state}"
                raise self._transport.error(
                    CLIENT_JOB_LOST,
                    f"job {job.uuid}: {lost.reason}; after reading VM {vm_uuid} for {time.monotonic() - start:.1f} s "
                    f"it is still not the case that {expected} ({seen})",
                    cause=lost.error,
                    api=job.api,
                    request=job.request,
                    job_uuid=job.uuid,
                )
            time.sleep(delay)


OnResubmit = Callable[[], None]
ATTACH_ISO = "AttachIsoToVmInstance"
DETACH_ISO = "DetachIsoFromVmInstance"


def job_kind(api: str, vm_state: str | None = None) -> str:
    """What job durations are learned by: the API, and the VM's state when known (§5.2 step 9: an ISO goes
    into a Stopped VM's database record alone, into a Running VM through the hypervisor)."""
    return f"{api} on a {vm_state} VM" if vm_state else api


class IsoJobs:
    """AttachIsoToVmInstance (§5) and DetachIsoFromVmInstance (§6): one job each, or the provider's whole intent."""

    def __init__(self, jobs: Jobs, queries: Queries, transport: Transport) -> None:
        self._jobs = jobs
        self._queries = queries
        self._transport = transport

    def attach(
        self,
        vm_uuid: str,
        iso_uuid: str,
        cdrom_uuid: str | None = None,
        *,
        timeout: float | None = None,
        job_uuid: str | None = None,
        vm_state: str | None = None,
    ) -> VmInstance:
        api = ATTACH_ISO
        path = f"/vm-instances/{quote_segment(vm_uuid)}/iso/{quote_segment(iso_uuid)}"
        # §5.1: top-level systemTags are read for POST; no body at all is fine too.
        body = {"systemTags": [f"cdromUuid::{cdrom_uuid}"], "userTags": []} if cdrom_uuid else None
        result, vm = self._jobs.run_settled(
            "POST",
            path,
            api=api,
            vm_uuid=vm_uuid,
            json_body=body,
            timeout=timeout,
            done=lambda v: v is not None and v.cdrom_with_iso(iso_uuid) is not None,
            expected=f"ISO {iso_uuid} is in a CD-ROM of VM {vm_uuid}",
            job_uuid=job_uuid,
            kind=job_kind(api, vm_state),
        )
        return self._vm_after(result, vm, api, self._transport.request_line("POST", path))

    def detach(
        self,
        vm_uuid: str,
        iso_uuid: str,
        *,
        timeout: float | None = None,
        job_uuid: str | None = None,
        vm_state: str | None = None,
    ) -> VmInstance:
        api = DETACH_ISO
        path = f"/vm-instances/{quote_segment(vm_uuid)}/iso"
        result, vm = self._jobs.run_settled(
            "DELETE",
            path,
            api=api,
            vm_uuid=vm_uuid,
            params={"isoUuid": iso_uuid},
            timeout=timeout,
            done=lambda v: v is not None and v.cdrom_with_iso(iso_uuid) is None,
            expected=f"ISO {iso_uuid} is in no CD-ROM of VM {vm_uuid}",
            job_uuid=job_uuid,
            kind=job_kind(api, vm_state),
        )
        return self._vm_after(result, vm, api, self._transport.request_line("DELETE", path))

    def ensure_attached(
        self, seen: VmInstance, iso_uuid: str, cdrom_uuid: str | None = None, *, on_resubmit: OnResubmit | None = None
    ) -> VmInstance:
        """Attach, keyed by ``seen``; a failure counts as done when the ISO is in the VM afterwards."""
        key = _key_from("attach", seen, iso_uuid, cdrom_uuid)
        for first in (True, False):
            try:
                # Read after write without another request: the job's result is the VM as the node re-reads it
                # once the attach is done (§5.1 refreshVO), or the VM read that settled a lost result.
                return self.attach(seen.uuid, iso_uuid, cdrom_uuid, job_uuid=key, vm_state=seen.state_name)
            except ZStackError as err:
                # A race with someone outside this process (§10) fails the job; the node's state decides.
                vm = self._queries.get_vm(seen.uuid)
                if vm is not None and vm.cdrom_with_iso(iso_uuid) is not None:
                    return vm
                err.vm = vm
                no_free_cdrom = vm is not None and bool(vm.cdroms) and not vm.empty_cdroms  # another job fails too
                if no_free_cdrom or not _resubmit(err, first, on_resubmit):
                    raise
        raise AssertionError("unreachable")

    def ensure_detached(
        self, seen: VmInstance, iso_uuid: str, *, on_resubmit: OnResubmit | None = None
    ) -> VmInstance | None:
        """Detach, keyed by ``seen``; a failure counts as done when the ISO is in no CD-ROM afterwards."""
        key = _key_from("detach", seen, iso_uuid)
        for first in (True, False):
            try:
                return self.detach(seen.uuid, iso_uuid, job_uuid=key, vm_state=seen.state_name)
            except ZStackError as err:
                vm = self._queries.get_vm(seen.uuid)
                if vm is None or vm.cdrom_with_iso(iso_uuid) is None:
                    return vm  # the job's answer was lost or wrong, but the ISO is out: that was the point
                err.vm = vm
                if not _resubmit(err, first, on_resubmit):
                    raise
        raise AssertionError("unreachable")

    def _vm_after(self, result: Mapping[str, Any] | None, vm: VmInstance | None, api: str, request: str) -> VmInstance:
        """The VM from the job's result, or the one read while settling a lost result."""
        if result is None:
            assert vm is not None  # `done` held for it
            return vm
        try:
            return VmInstance.model_validate(result.get("inventory"))
        except ValidationError as exc:
            raise self._transport.protocol_error(api, request, f"the result has no valid VM inventory: {exc}") from None


def _resubmit(err: ZStackError, first: bool, on_resubmit: OnResubmit | None) -> bool:
    """True when a lost job may be submitted once more: the node forgot it (a restart loses the jobs in flight,
    §3.4) and the VM shows its work undone, so a second job cannot do it twice (§5.2 step 6, §6.2)."""
    if err.code != CLIENT_JOB_LOST or not first:
        return False
    if on_resubmit is not None:
        on_resubmit()
    return True


def _key_from(action: str, seen: VmInstance, iso_uuid: str, pinned: str | None = None) -> str:
    """The job's X-Job-UUID, from the intent and the VM as read just before the submit.

    A run after a crash reads the VM unchanged while its predecessor's job is still queued or running, derives
    the same UUID and waits for that job instead of submitting a second one (§3.2 refuses a duplicate); any
    change to the VM or its CD-ROMs gives a new UUID. An older job with the same UUID is told apart by the
    VM's state (``Jobs.run_settled``)."""
    cdroms = [f"{c.uuid}={c.iso_uuid or ''}@{c.last_op_date}" for c in seen.cdroms]
    return stable_job_uuid(action, seen.uuid, iso_uuid, pinned or "", str(seen.state), str(seen.last_op_date), *cdroms)
