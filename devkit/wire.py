"""Values as the engine puts them on the wire to a dynamic provider, and the `__provider` string.

See docs/engine-stand-in.md#what-the-engine-sends for the rules these follow.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic
from google.protobuf import struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime._serialization import _serialize

# The repository's root: the Pulumi project (Pulumi.yaml, __main__.py) and the provider host's cwd.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROVIDER_KEY = "__provider"
# The wire form of a value computed during a preview (pulumi.runtime.rpc.UNKNOWN); decoded values are
# `pulumi.output.Unknown` instances instead: test either with `is_unknown`.
UNKNOWN: str = rpc.UNKNOWN
DEFAULT_TYPE = "pulumi-python:dynamic:Resource"
DEFAULT_STACK = "dev"


def serialize_provider(provider: pulumi.dynamic.ResourceProvider) -> str:
    """The `__provider` string exactly as `pulumi.dynamic.Resource.__init__` builds it (dill, base64)."""
    # Private SDK API (pinned pulumi version): secret Outputs may be captured, as in Resource.__init__.
    return _serialize(True, pulumi.dynamic.dynamic.serialize_provider, provider)[0]


def decode_provider(serialized: str) -> bytes:
    """The raw pickle bytes behind a `__provider` string (grep them for credentials)."""
    return base64.b64decode(serialized)


def is_unknown(value: Any) -> bool:
    """True for a preview unknown, on the wire (`UNKNOWN`) or decoded (`pulumi.output.Unknown`)."""
    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


def without_provider(props: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a property dict without `__provider`, for readable assertions."""
    return {k: v for k, v in (props or {}).items() if k != PROVIDER_KEY}


def project_name(directory: str | os.PathLike[str] = PROJECT_ROOT) -> str:
    """The `name:` of the Pulumi.yaml in directory, else the directory's name."""
    path = Path(directory) / "Pulumi.yaml"
    if path.exists():
        match = re.search(r"^name:\s*['\"]?([^'\"\s#]+)", path.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return Path(directory).resolve().name


def plain(value: Any) -> Any:
    """What the engine puts on the wire to a dynamic provider: unknowns as UNKNOWN, secrets unwrapped."""
    # The dynamic host answers acceptSecrets=False, so the engine sends secret values in the clear.
    if rpc.is_rpc_secret(value):
        value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_struct(props: Mapping[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if props:
        struct.update(plain(props))
    return struct


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return rpc.deserialize_properties(struct, keep_unknowns=True)
