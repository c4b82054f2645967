"""`Engine`: a small stand-in for the Pulumi deployment engine over one `ProviderHost`.

It keeps a stack state and applies the engine's rules (docs/engine-stand-in.md#what-the-engine-sends):
preview, up (same/update/replace, honouring delete-before-replace; deletion of undeclared resources), refresh
and destroy, independent resources in parallel. Where it departs from the real engine is in
docs/engine-stand-in.md#what-the-stand-in-leaves-out.

    from devkit import Engine, ProviderHost

    with ProviderHost(IsoAttachmentProvider(), config=...) as host:
        engine = Engine(host, type_="pulumi-python:dynamic/zstack:IsoAttachment")
        result = engine.up({"a": {"vm_uuid": vm, "iso_uuid": iso}})
        assert result.kinds == {"a": "create"}
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from .host import DiffOutcome, ProviderHost
from .wire import DEFAULT_TYPE

T = TypeVar("T")


class CheckFailed(Exception):
    """Check returned failures; the engine reports them and does not go on to Create/Diff."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        super().__init__("; ".join(f"{prop}: {reason}" for prop, reason in failures))


@dataclass
class ResourceState:
    """One resource in the stack state, as the engine's checkpoint holds it."""

    name: str
    urn: str
    type: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    # Deleted by a delete-before-replace whose Create then failed: the engine keeps the old state, marked
    # `pendingReplacement`, so that the next `up` creates the replacement without deleting again; refresh
    # leaves it alone and destroy drops it without a Delete (all seen with the real CLI v3.274.1).
    pending_replacement: bool = False


@dataclass
class StepResult:
    """What happened to one resource in a preview/up/refresh/destroy.

    `kind`: create | same | update | replace | delete (planned in a preview, performed otherwise), or, when
    the engine could not get as far as choosing, "check" (Check failed) or "diff" (Diff failed). On refresh:
    same | update | delete (the resource vanished and was dropped). `skipped` marks a removal that was not
    attempted because another step failed. A failed step leaves the resource's old state in place, except
    that a delete-before-replace whose Create failed has already deleted the old one: the state keeps it
    marked `pending_replacement`, as the real engine does.
    """

    name: str
    urn: str
    kind: str
    error: Exception | None = None
    diff: DiffOutcome | None = None
    id: str | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped


@dataclass
class RunResult:
    """All steps of one engine operation, keyed by resource name."""

    operation: str
    steps: dict[str, StepResult] = field(default_factory=dict)
    # Old resources of create-before-replace steps whose Delete failed and was retried (engine: pending delete).
    pending_deletes: list[StepResult] = field(default_factory=list)

    @property
    def kinds(self) -> dict[str, str]:
        return {name: step.kind for name, step in self.steps.items()}

    @property
    def errors(self) -> dict[str, Exception]:
        steps = list(self.steps.values()) + self.pending_deletes
        return {step.name: step.error for step in steps if step.error is not None}

    @property
    def ok(self) -> bool:
        return not self.errors and not any(s.skipped for s in self.steps.values())

    def raise_on_error(self) -> RunResult:
        if self.errors:
            name, error = next(iter(self.errors.items()))
            raise AssertionError(f"{self.operation} failed for {sorted(self.errors)}; {name}: {error}") from error
        return self


class Engine:
    """A stand-in for the Pulumi engine over one ProviderHost (docs/engine-stand-in.md#what-the-engine-sends).

    `state` maps URN -> ResourceState. Declared resources are a mapping name -> input dict (`__provider` may
    be included, e.g. one captured by `run_program`; otherwise the host adds its own). Independent resources
    run concurrently, `parallel` at a time, like `pulumi up --parallel`. Unlike the engine, a failure does not
    cancel the other declared resources' steps; it does skip deletions of removed resources (the engine only
    deletes once everything else succeeded), unless `continue_on_error`.
    """

    def __init__(
        self,
        host: ProviderHost,
        *,
        type_: str = DEFAULT_TYPE,
        parallel: int = 16,
        continue_on_error: bool = False,
    ) -> None:
        self.host = host
        self.type = type_
        self.parallel = parallel
        self.continue_on_error = continue_on_error
        self.state: dict[str, ResourceState] = {}
        self.pending_deletes: list[ResourceState] = []
        self._lock = threading.Lock()

    # -- state access ------------------------------------------------------------------------------------------

    def urn(self, name: str) -> str:
        return self.host.urn(name, self.type)

    def resource(self, name: str) -> ResourceState | None:
        with self._lock:
            return self.state.get(self.urn(name))

    def names(self) -> list[str]:
        with self._lock:
            return sorted(r.name for r in self.state.values())

    def _put(self, res: ResourceState) -> None:
        with self._lock:
            self.state[res.urn] = res

    def _drop(self, urn: str) -> None:
        with self._lock:
            self.state.pop(urn, None)

    def _each(self, items: Iterable[T], fn: Callable[[T], StepResult]) -> list[StepResult]:
        items = list(items)
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(self.parallel, len(items)))) as pool:
            return list(pool.map(fn, items))

    # -- operations ------------------------------------------------------------------------------------------

    def preview(self, resources: Mapping[str, Mapping[str, Any]]) -> RunResult:
        """Check (and Diff for existing resources); no Create/Update/Delete; state untouched."""
        return self._deploy(resources, preview=True)

    def up(self, resources: Mapping[str, Mapping[str, Any]]) -> RunResult:
        """Bring the stack to `resources`: create new, same/update/replace existing, delete removed."""
        return self._deploy(resources, preview=False)

    def _deploy(self, resources: Mapping[str, Mapping[str, Any]], preview: bool) -> RunResult:
        result = RunResult("preview" if preview else "up")
        for step in self._each(resources.items(), lambda item: self._step(item[0], dict(item[1]), preview)):
            result.steps[step.name] = step
        declared = {self.urn(name) for name in resources}
        with self._lock:
            removed = [r for urn, r in self.state.items() if urn not in declared]
            pending = list(self.pending_deletes)
        go_on = preview or self.continue_on_error or not result.errors
        if preview:
            for res in removed:
                result.steps[res.name] = StepResult(res.name, res.urn, "delete", id=res.id, outputs=res.outputs)
        elif go_on:
            for step in self._each(pending, self._retry_pending_delete):
                result.pending_deletes.append(step)
            for step in self._each(removed, self._delete):
                result.steps[step.name] = step
        else:
            for res in removed:
                result.steps[res.name] = StepResult(res.name, res.urn, "delete", id=res.id, skipped=True)
        return result

    def _step(self, name: str, news: dict[str, Any], preview: bool) -> StepResult:
        urn = self.urn(name)
        with self._lock:
            old = self.state.get(urn)
        call = {"name": name, "type_": self.type}
        if old is None:
            step = StepResult(name, urn, "create")
            try:
                inputs, failures = self.host.check({}, news, **call)
                if failures:
                    raise CheckFailed(failures)
                step.inputs = inputs
                if preview:
                    # supportsPreview is False: the engine shows the inputs as the planned state.
                    step.outputs = inputs
                    return step
                step.id, step.outputs = self.host.create(inputs, **call)
                self._put(ResourceState(name, urn, self.type, step.id, inputs, step.outputs))
            except Exception as exc:  # noqa: BLE001 the engine reports per resource and carries on
                step.error = exc
            return step

        step = StepResult(name, urn, "check", id=old.id)
        try:
            inputs, failures = self.host.check(old.inputs, news, **call)
            if failures:
                raise CheckFailed(failures)
            step.kind = "diff"
            step.diff = self.host.diff(old.id, old.outputs, inputs, old.inputs, **call)
            step.kind = self._classify(step.diff, old.inputs, inputs)
            step.inputs = inputs
            if step.kind == "same":
                step.outputs = old.outputs
                if not preview:
                    # A same step keeps the old outputs (and the old __provider inside them) with the new inputs.
                    self._put(ResourceState(name, urn, self.type, old.id, inputs, old.outputs))
            elif step.kind == "update":
                if preview:
                    step.outputs = inputs
                    return step
                step.outputs = self.host.update(old.id, old.outputs, inputs, old.inputs, **call)
                self._put(ResourceState(name, urn, self.type, old.id, inputs, step.outputs))
            else:
                self._replace(step, old, news, preview, call)
        except Exception as exc:  # noqa: BLE001 the engine reports per resource and carries on
            step.error = exc
        return step

    @staticmethod
    def _classify(diff: DiffOutcome, old_inputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
        if diff.changes == "unknown":
            # No answer from the provider: the engine compares old and new inputs itself, __provider included.
            return "same" if dict(old_inputs) == dict(inputs) else "update"
        if diff.replace:
            return "replace"
        return "update" if diff.changes == "some" else "same"

    def _replace(
        self, step: StepResult, old: ResourceState, news: dict[str, Any], preview: bool, call: dict[str, str]
    ) -> None:
        # A replacement is checked again as a fresh resource: olds = {}.
        inputs, failures = self.host.check({}, news, **call)
        if failures:
            raise CheckFailed(failures)
        step.inputs = inputs
        if preview:
            step.outputs = inputs
            return
        name, urn = old.name, old.urn
        if step.diff is not None and step.diff.delete_before_replace:
            if not old.pending_replacement:
                self.host.delete(old.id, old.outputs, old.inputs, **call)
                self._put(replace(old, pending_replacement=True))
            step.id, step.outputs = self.host.create(inputs, **call)
            self._put(ResourceState(name, urn, self.type, step.id, inputs, step.outputs))
            return
        step.id, step.outputs = self.host.create(inputs, **call)
        self._put(ResourceState(name, urn, self.type, step.id, inputs, step.outputs))
        with self._lock:
            self.pending_deletes.append(old)
        self.host.delete(old.id, old.outputs, old.inputs, **call)
        with self._lock:
            self.pending_deletes.remove(old)

    def _delete(self, res: ResourceState) -> StepResult:
        step = StepResult(res.name, res.urn, "delete", id=res.id, outputs=res.outputs)
        try:
            if not res.pending_replacement:  # already deleted on the node
                self.host.delete(res.id, res.outputs, res.inputs, name=res.name, type_=res.type)
            self._drop(res.urn)
        except Exception as exc:  # noqa: BLE001 a failed delete keeps the resource in state
            step.error = exc
        return step

    def _retry_pending_delete(self, res: ResourceState) -> StepResult:
        step = StepResult(res.name, res.urn, "delete", id=res.id, outputs=res.outputs)
        try:
            self.host.delete(res.id, res.outputs, res.inputs, name=res.name, type_=res.type)
            with self._lock:
                self.pending_deletes.remove(res)
        except Exception as exc:  # noqa: BLE001 stays pending for the next run
            step.error = exc
        return step

    def refresh(self) -> RunResult:
        """Read every resource: a blank id drops it; returned inputs replace the stored ones."""
        result = RunResult("refresh")
        with self._lock:
            current = list(self.state.values())
        for step in self._each(current, self._refresh_one):
            result.steps[step.name] = step
        return result

    def _refresh_one(self, res: ResourceState) -> StepResult:
        step = StepResult(res.name, res.urn, "same", id=res.id)
        if res.pending_replacement:
            return step  # the real engine does not read a resource it is about to create again
        try:
            new_id, outputs, inputs = self.host.read(res.id, res.outputs, res.inputs, name=res.name, type_=res.type)
            if not new_id:
                step.kind = "delete"
                self._drop(res.urn)
                return step
            new_inputs = inputs if inputs is not None else res.inputs
            changed = outputs != res.outputs or new_inputs != res.inputs or new_id != res.id
            step.kind = "update" if changed else "same"
            step.id, step.outputs, step.inputs = new_id, outputs, new_inputs
            self._put(ResourceState(res.name, res.urn, res.type, new_id, new_inputs, outputs))
        except Exception as exc:  # noqa: BLE001 a failed read keeps the resource as it was
            step.error = exc
        return step

    def destroy(self) -> RunResult:
        """Delete every resource (and pending deletes); a failed Delete keeps the resource in state."""
        result = RunResult("destroy")
        with self._lock:
            current = list(self.state.values())
            pending = list(self.pending_deletes)
        result.pending_deletes.extend(self._each(pending, self._retry_pending_delete))
        for step in self._each(current, self._delete):
            result.steps[step.name] = step
        return result
