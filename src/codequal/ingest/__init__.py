"""Ingest: the wire formats other services already speak, decoded into our own records.

One module per format (:mod:`.sentry`, :mod:`.otlp`, :mod:`.loki`), each a set of pure functions
from a request's bytes and headers to :class:`~codequal.telemetry.logging.LogEntry`,
:class:`~codequal.telemetry.stores.spans.SpanRecord` and
:class:`~codequal.telemetry.errors.ErrorEvent`.
Size limits, decompression and the per-key rate limiter are in :mod:`.limits`; the HTTP layer
(:mod:`codequal.api.ingest`) stores what the decoders return, synchronously, before answering.

Every rejection is one :class:`IngestError` whose message says what to change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from random import getrandbits
from typing import Any, TypeGuard

from codequal.exceptions import InvalidInput
from codequal.telemetry.metrics import INGEST_ITEMS
from codequal.vocabulary import Level

__all__ = [
    "ITEMS",
    "IngestError",
    "clean",
    "count_items",
    "json_safe",
    "level_from_text",
    "new_trace_id",
]

# Bounded label values: ITEMS{format} is one of these, {type} one of each format's known types.
FORMATS = ("sentry", "otlp", "loki", "remote_write")

ITEMS = INGEST_ITEMS  # declared in the catalogue with every other metric

# Column widths of the stores (PostgreSQL enforces VARCHAR lengths; SQLite does not).
SERVICE_WIDTH = 100
MAX_DEPTH = 16
TRUNCATED = "[Truncated]"  # what stands for a value nested deeper than MAX_DEPTH
_INT64 = 2**63


class IngestError(InvalidInput):
    """A request the server will not take: ``status`` is the 4xx, ``message`` says why."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    @property
    def title(self) -> str:
        """The short ``error`` of the API's error shape; ``message`` is its ``detail``."""
        return _TITLES.get(self.status, "rejected")


_TITLES = {
    400: "malformed request",
    401: "unauthorised",
    403: "forbidden",
    413: "request too large",
    415: "unsupported media type",
    429: "rate limited",
    503: "service unavailable",
}


def count_items(fmt: str, kind: str, outcome: str, n: int = 1) -> None:
    if n:
        ITEMS.labels(format=fmt, type=kind, outcome=outcome).inc(n)


def clean(text: str) -> str:
    """``text`` without NUL: PostgreSQL text and JSONB reject it, and one would fail a batch."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


_SCALARS = frozenset({int, bool, float, type(None)})


def json_safe(value: Any, depth: int = 0) -> Any:
    """Parsed JSON (or protobuf values) made storable on both databases.

    NUL leaves strings and keys, integers beyond int64 and non-finite floats become strings
    (orjson and JSONB refuse them), and nesting past ``MAX_DEPTH`` is cut.
    """
    kind = type(value)
    # Parsed JSON is str, dict, list, float, int, bool and None: exact type tests first (an
    # isinstance test against the Mapping ABC costs more than the rest of the work here).
    if kind is str:
        return clean(value)
    if kind is float and math.isfinite(value):
        return value
    sequence = kind is list or kind is tuple or isinstance(value, list | tuple)
    if not sequence and kind is not dict and (kind in _SCALARS or not isinstance(value, Mapping)):
        return _scalar(value)
    if depth >= MAX_DEPTH:
        return TRUNCATED
    if sequence:
        return [json_safe(v, depth + 1) for v in value]
    return {clean(str(k)): json_safe(v, depth + 1) for k, v in value.items()}


def _scalar(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return clean(str(value))


_LEVELS: dict[str, Level] = {
    "trace": "debug",
    "debug": "debug",
    "dbug": "debug",
    "info": "info",
    "information": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "eror": "error",
    "critical": "critical",
    "crit": "critical",
    "fatal": "critical",
    "emerg": "critical",
    "emergency": "critical",
    "alert": "critical",
    "panic": "critical",
}


def level_from_text(text: object) -> Level | None:
    """Our level for a severity word (``WARNING``, ``err``, ``fatal``, ...); None if unknown."""
    if not isinstance(text, str):
        return None
    return _LEVELS.get(text.strip().lower())


def new_trace_id() -> str:
    # An entry outside any trace is a trace of its own, as the in-process logger does.
    return f"{getrandbits(128):032x}"


_HEX_ID = {n: re.compile(f"[0-9a-fA-F]{{{n}}}") for n in (16, 32)}


def is_hex_id(value: object, length: int) -> TypeGuard[str]:
    """True for a hex id of ``length`` (16 or 32) digits that is not all zeros."""
    return (
        isinstance(value, str)
        and _HEX_ID[length].fullmatch(value) is not None
        and value.strip("0") != ""
    )
