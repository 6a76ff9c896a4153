"""Request / analysis context carried by contextvars, so log lines and errors pick it up.

``bind(user_id=..., repository_url=...)`` inside a request or an analysis makes every log line
and captured error in that task carry those fields without passing them by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

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
