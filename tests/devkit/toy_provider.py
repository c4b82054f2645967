"""A throwaway dynamic provider that proves the engine stand-in (devkit) without ZStack.

It stores "attachments" in a JSON file named by the `toy:store` config key (falling back to the
TOY_STORE environment variable), so a test can change the world behind the provider's back.
It lives in an importable module, so Pulumi pickles it by reference, like the real provider.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown

INPUTS = ("name", "size")
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# One lock per provider process: the host runs up to 4 calls at once on one shared provider instance.
_STORE_LOCK = threading.Lock()
_IN_FLIGHT = [0]


def _store_path(path: str | None) -> Path:
    if not path:
        raise RuntimeError("toy provider: set config toy:store or TOY_STORE to the JSON store path")
    return Path(path)


def load_store(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The store as a dict id -> record (also used by tests to look behind the provider's back)."""
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else {}


def save_store(path: str | os.PathLike[str], store: dict[str, dict[str, Any]]) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(store, sort_keys=True))
    tmp.replace(path)


class ToyProvider(ResourceProvider):
    """Records an attachment per `name`; `size` updates in place, a new `name` replaces."""

    def configure(self, req: ConfigureRequest) -> None:
        # Runs once per provider process (the host caches the unpickled instance), never pickled.
        self._store = req.config.get("toy:store") or os.environ.get("TOY_STORE")
        self._label = req.config.get("toy:label") or "unlabelled"

    def _path(self) -> Path:
        return _store_path(getattr(self, "_store", None) or os.environ.get("TOY_STORE"))

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        name = news.get("name")
        if not isinstance(name, Unknown):
            if not isinstance(name, str) or not _NAME.match(name):
                failures.append(CheckFailure("name", f"name must be lowercase letters and digits, got {name!r}"))
        size = news.get("size", 1)
        if not isinstance(size, Unknown) and (not isinstance(size, (int, float)) or size < 1):
            failures.append(CheckFailure("size", f"size must be a number >= 1, got {size!r}"))
        return CheckResult(news, failures)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        if news.get("opaque"):
            return DiffResult()  # "unknown": the engine compares the inputs itself
        # Unknowns (preview) replace, as a real provider must when it cannot tell.
        replaces = [k for k in ("name",) if isinstance(news.get(k), Unknown) or olds.get(k) != news.get(k)]
        changed = replaces or [k for k in INPUTS if olds.get(k) != news.get(k)]
        with _STORE_LOCK:
            if id_ not in load_store(self._path()):
                pulumi.log.warn(f"toy: attachment {id_} vanished outside Pulumi")
                replaces = replaces or ["name"]
        return DiffResult(
            changes=bool(changed or replaces),
            replaces=replaces,
            delete_before_replace=bool(news.get("dbr")),
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        if props.get("explode"):
            raise RuntimeError(f"toy create refused {props['name']}: explode was set")
        id_ = f"att-{props['name']}"
        pulumi.log.info(f"toy: creating {id_}")
        with _STORE_LOCK:
            _IN_FLIGHT[0] += 1
        time.sleep(float(props.get("sleep", 0)))
        with _STORE_LOCK:
            # How many creates were running at once, seen at the end of this one's sleep.
            in_flight = _IN_FLIGHT[0]
            _IN_FLIGHT[0] -= 1
        with _STORE_LOCK:
            store = load_store(self._path())
            if id_ in store:
                raise RuntimeError(f"toy create: {id_} already exists")
            store[id_] = {k: props[k] for k in INPUTS if k in props}
            save_store(self._path(), store)
        pulumi.log.info(f"toy: created {id_}")
        outs = {k: v for k, v in props.items() if k != "__provider"}
        return CreateResult(id_, {**outs, "label": self._label, "pid": os.getpid(), "in_flight": in_flight})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _STORE_LOCK:
            record = load_store(self._path()).get(id_)
        if record is None:
            return ReadResult("", {})
        outs = {**{k: v for k, v in props.items() if k != "__provider"}, **record}
        return ReadResult(id_, outs, inputs=dict(record))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with _STORE_LOCK:
            store = load_store(self._path())
            store[id_] = {k: news[k] for k in INPUTS if k in news}
            save_store(self._path(), store)
        return UpdateResult({**olds, **news})

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        with _STORE_LOCK:
            store = load_store(self._path())
            if store.pop(id_, None) is not None:
                save_store(self._path(), store)


class ToyAttachment(Resource, module="toy", name="Attachment"):
    """The resource a tiny test program declares."""

    label: pulumi.Output[str]

    def __init__(self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(ToyProvider(), resource_name, {**props, "label": None}, opts)
