"""The error event: one captured error, already scrubbed, as every part passes it around.

Built by :mod:`codequal.telemetry.errors` (in process) and :mod:`codequal.ingest.sentry_event`
(from a Sentry client); stored by :mod:`codequal.telemetry.stores.errors`; forwarded by
:mod:`codequal.telemetry.sinks.sentry_forwarder`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

MAX_STACK = 65_536  # characters of formatted stack kept per event


@dataclass(frozen=True)
class ErrorEvent:
    """One captured error, already scrubbed. ``frames`` is a tuple so the record stays frozen."""

    event_id: str
    timestamp: float
    level: str
    type: str
    message: str
    stack: str
    frames: tuple[dict[str, Any], ...]
    fingerprint: str
    service: str
    environment: str
    release: str | None = None
    trace_id: str | None = None
    user_id: str | None = None
    repository_url: str | None = None
    analysis_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type

    @property
    def culprit(self) -> str | None:
        """Where it happened: the innermost in-app frame, as ``module in function``."""
        app = [f for f in self.frames if f.get("in_app")] or list(self.frames)
        return f"{app[-1]['module']} in {app[-1]['function']}" if app else None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a new dict (``frames`` a list); nested values are copies, not shared."""
        data = {name: getattr(self, name) for name in _EVENT_FIELDS}
        data["frames"] = [_copy_json(frame) for frame in self.frames]
        data["context"] = _copy_json(self.context)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorEvent:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["frames"] = tuple(values.get("frames") or ())
        return cls(**values)


_EVENT_FIELDS = tuple(f.name for f in fields(ErrorEvent))


def _copy_json(value: Any) -> Any:
    """A deep copy, as dataclasses.asdict made, at a fraction of its cost for JSON values."""
    if isinstance(value, str | int | float | None):
        return value
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy_json(v) for v in value)
    return copy.deepcopy(value)
