"""Reads (§4): synchronous GETs with one re-login on ID.1001, typed inventories, and the wait for a VM to
leave a state that ends by itself."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from ..config import PollPolicy
from ..errors import CLIENT_CONFIG, CLIENT_TIMEOUT, hint_for
from ..models import Image, VmInstance
from .auth import Auth
from .transport import NoAnswer, Transport, quote_segment

log = logging.getLogger("zstack_iso.client")

M = TypeVar("M", bound=BaseModel)

# How often to re-read a VM that is changing state, or whose job's result is lost (jobs.py).
VM_STATE_POLLING = PollPolicy(floor=0.05, ratio=0.1, cap=1.0)


class Queries:
    """ZStack's query APIs and the typed reads built on them."""

    def __init__(self, transport: Transport, auth: Auth, job_timeout: float) -> None:
        self._transport = transport
        self._auth = auth
        self._job_timeout = job_timeout

    def get(self, path: str, *, api: str, params: Any = None) -> dict:
        """A synchronous GET (§4) with one re-login on ID.1001 (§1.5)."""
        transport = self._transport
        request = transport.request_line("GET", path)

        def attempt(sid: str | None, _first: bool) -> dict:
            try:
                resp = transport.send("GET", path, params=params, headers=self._auth.headers("GET", path, sid))
            except NoAnswer as exc:
                raise transport.no_answer_error(exc, api, request) from None
            if resp.status_code != 200:
                raise transport.answer_error(resp, api, request)
            return transport.json_object(resp, api, request)

        return self._auth.run(attempt, api=api, again="repeating")

    def inventories(self, path: str, *, api: str, params: Any = None) -> list[dict]:
        data = self.get(path, api=api, params=params)
        inventories = data.get("inventories")
        if not isinstance(inventories, list):
            request = self._transport.request_line("GET", path)
            raise self._transport.protocol_error(api, request, "the query answer has no 'inventories' list")
        return [i for i in inventories if isinstance(i, dict)]

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
        """A ZStack query (§4.2): the raw inventories; see ``ZStackClient.query``."""
        resource = resource.strip("/")
        params: list[tuple[str, Any]] = [("q", c) for c in conditions]
        params += [("q", _condition(name, value)) for name, value in equals.items()]
        if limit is not None:
            params.append(("limit", int(limit)))
        if start is not None:
            params.append(("start", int(start)))
        if sort:
            params.append(("sort", sort))
        if fields:
            params.append(("fields", ",".join(fields)))
        api = "Query" + "".join(part.title().replace("-", "") for part in resource.split("/"))
        path = "/" + "/".join(quote_segment(p) for p in resource.split("/"))
        return self.inventories(path, api=api, params=params)

    def query_as(self, model: type[M], resource: str, conditions: tuple[str, ...], equals: dict) -> list[M]:
        """``query`` read into ``model``; an inventory that does not fit it is a CLIENT.PROTOCOL error."""
        rows = self.query(resource, *conditions, **equals)
        try:
            return [model.model_validate(row) for row in rows]
        except ValidationError as exc:
            request = self._transport.request_line("GET", f"/{resource}")
            raise self._transport.protocol_error(f"Query {resource}", request, f"unreadable inventory: {exc}") from None

    def by_uuid(self, model: type[M], resource: str, uuid: str, *, api: str) -> M | None:
        """The one ``resource`` whose UUID is ``uuid`` (compared case-insensitively), or None (§4.1: ``/{uuid}``
        answers a possibly empty list)."""
        if not uuid or not uuid.strip():
            return None  # an empty UUID would make "/vm-instances/" list them all
        rows = self.inventories(f"/{resource}/{quote_segment(uuid)}", api=api)
        wanted = uuid.strip().lower()
        rows = [row for row in rows if str(row.get("uuid", "")).lower() == wanted]
        if not rows:
            return None
        try:
            return model.model_validate(rows[0])
        except ValidationError as exc:
            request = self._transport.request_line("GET", f"/{resource}/{uuid}")
            raise self._transport.protocol_error(api, request, f"unreadable inventory: {exc}") from None

    def get_vm(self, vm_uuid: str) -> VmInstance | None:
        return self.by_uuid(VmInstance, "vm-instances", vm_uuid, api="QueryVmInstance")

    def get_image(self, image_uuid: str) -> Image | None:
        return self.by_uuid(Image, "images", image_uuid, api="QueryImage")

    def wait_for_settled_state(
        self, vm_uuid: str, timeout: float | None = None, *, deadline: float | None = None
    ) -> VmInstance | None:
        """The VM once it is not transitional, or None when it does not exist; see ``ZStackClient``."""
        start = time.monotonic()
        end = self._end(start, timeout, deadline)
        announced = False
        while True:
            vm = self.get_vm(vm_uuid)
            if vm is None or not vm.is_transitional:
                return vm
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise self._transport.error(
                    CLIENT_TIMEOUT,
                    f"VM {vm_uuid} was still in state {vm.state} when the wait for it ended after "
                    f"{time.monotonic() - start:.1f} s",
                    api="QueryVmInstance",
                    request=self._transport.request_line("GET", f"/vm-instances/{vm_uuid}"),
                    hint=hint_for(CLIENT_TIMEOUT, "vm"),
                )
            if not announced:
                log.info("waiting for VM %s to leave state %s", vm_uuid, vm.state)
                announced = True
            time.sleep(min(VM_STATE_POLLING.next_delay(time.monotonic() - start), remaining))

    def _end(self, start: float, timeout: float | None, deadline: float | None) -> float:
        """The sooner of ``start + timeout`` and ``deadline``; ``start + job_timeout`` when neither is given."""
        ends: list[float] = []
        if timeout is not None:
            if not _finite(timeout):
                raise self._transport.error(
                    CLIENT_CONFIG, f"timeout must be a finite number of seconds, got {timeout!r}"
                )
            ends.append(start + float(timeout))
        if deadline is not None:
            if not _finite(deadline):
                raise self._transport.error(
                    CLIENT_CONFIG, f"deadline must be a finite time.monotonic() value, got {deadline!r}"
                )
            ends.append(float(deadline))
        return min(ends) if ends else start + self._job_timeout


def _finite(value: object) -> bool:
    """An int or float that is neither nan nor ±inf (bool is not a number of seconds)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _condition(name: str, value: Any) -> str:
    """``name=value`` for ZStack's ``q`` (§4.2); lists become IN (``?=``), None ``is null``."""
    field_name = name if any(c.isupper() for c in name) or "." in name else to_camel(name)
    if value is None:
        return f"{field_name} is null"
    if isinstance(value, (list, tuple, set, frozenset)):
        return f"{field_name}?=" + ",".join(str(v) for v in value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"{field_name}={value}"
