"""The simulator's run-time config (the control API's /_simulator/config; not ZStack's)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

_TYPES = {"jobSeconds": float, "latencyMs": float, "sessionTimeoutSeconds": int, "strictAttach": bool}


@dataclass
class SimConfig:
    jobSeconds: float = 1.0
    latencyMs: float = 0.0
    sessionTimeoutSeconds: int = 7200  # §1.4 identity.session.timeout
    # Refuse, as the simulator did before, what the open-source node accepts on attach: an ISO that is not
    # Enabled and Ready, and a cdromUuid:: tag naming another VM's CD-ROM (a commercial build may check them)
    strictAttach: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def set(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            setattr(self, key, value)


def checked_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Any subset of jobSeconds, latencyMs, sessionTimeoutSeconds, strictAttach, converted; ValueError on a bad
    key or value."""
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in _TYPES:
            raise ValueError(f"unknown config key {key!r}; known: {sorted(_TYPES)}")
        if _TYPES[key] is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
            clean[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key} must be a non-negative number")
        if _TYPES[key] is int and value != int(value):
            raise ValueError(f"{key} must be an integer")
        clean[key] = _TYPES[key](value)
    return clean
