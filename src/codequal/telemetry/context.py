"""Request / analysis context carried by contextvars, so log lines and errors pick it up.

``bind(user_id=..., repository_url=...)`` inside a request or an analysis makes every log line
and captured error in that task carry those fields without passing them by hand; the ids of the
current OpenTelemetry span are read here too, for the same log lines and errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from opentelemetry.context import get_current as _get_context
from opentelemetry.trace.propagation import _SPAN_KEY

_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_context: ContextVar[MappingProxyType[str, Any]] = ContextVar("codequal_context", default=_EMPTY)

# Keys with a place of their own in LogEntry and error events; anything else goes to metadata.
KNOWN_KEYS = ("trace_id", "user_id", "repository_url", "analysis_id")


def current() -> MappingProxyType[str, Any]:
    """The fields bound in this task (read-only)."""
    return _context.get()


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Bind fields for the duration of the ``with`` block (``None`` values are skipped)."""
    merged = dict(_context.get())
    merged.update({k: v for k, v in fields.items() if v is not None})
    token = _context.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _context.reset(token)


# The ids of the span last asked about, as (span context, trace hex, span hex). Consecutive
# log lines mostly come from the same span, and formatting a 128-bit int costs more than
# finding the span. One tuple swapped in one assignment, so no thread sees a torn entry.
_last_ids: list[tuple[object, str, str]] = [(None, "", "")]


def _current_ids() -> tuple[object, str, str] | None:
    # Not trace.get_current_span(): its isinstance check against an ABC costs more than the
    # whole lookup here, and the API stores only spans under _SPAN_KEY.
    span: Any = _get_context().get(_SPAN_KEY)
    if span is None:
        return None
    ctx = span.get_span_context()
    last = _last_ids[0]
    if last[0] is ctx:
        return last
    if not ctx.is_valid:
        return None
    entry = (ctx, f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    _last_ids[0] = entry
    return entry


def current_trace_id() -> str | None:
    """The 32-hex trace id of the current span, or None outside any (valid) span."""
    ids = _current_ids()
    return ids[1] if ids is not None else None


def current_span_id() -> str | None:
    """The 16-hex id of the current span, or None outside any (valid) span."""
    ids = _current_ids()
    return ids[2] if ids is not None else None
