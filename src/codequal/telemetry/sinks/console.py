"""Console sink: JSON lines for machines, a readable colour format on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO

import orjson

from codequal.telemetry.logging import LogEntry
from codequal.telemetry.sinks.context import SinkContext
from codequal.vocabulary import iso_timestamp

_COLOURS = {
    "debug": "\x1b[2m",
    "info": "\x1b[32m",
    "warn": "\x1b[33m",
    "error": "\x1b[31m",
    "critical": "\x1b[1;41;97m",
}
_RESET = "\x1b[0m"


def choose_format(fmt: str, stream: BinaryIO) -> str:
    """``auto`` means JSON lines unless the stream is a terminal."""
    if fmt != "auto":
        return fmt
    try:
        return "console" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def render_json(entry: LogEntry) -> bytes:
    return orjson.dumps(entry.to_dict(), default=str) + b"\n"


def render_console(entry: LogEntry, colour: bool = True) -> bytes:
    start, end = (_COLOURS[entry.level], _RESET) if colour else ("", "")
    parts = [
        iso_timestamp(entry.timestamp)[11:23],
        f"{start}{entry.level.upper():<8}{end}",
        f"[{entry.service}]",
        entry.action,
    ]
    if entry.duration is not None:
        parts.append(f"duration={entry.duration:.3f}s")
    for key, value in (entry.metadata or {}).items():
        parts.append(f"{key}={value}")
    if entry.repository_url:
        parts.append(f"repository={entry.repository_url}")
    parts.append(f"trace={entry.trace_id[:8]}")
    line = " ".join(parts) + "\n"
    if entry.error is not None:
        line += entry.error.stack or f"{entry.error.type}: {entry.error.message}\n"
    return line.encode("utf-8", "replace")


class ConsoleSink:
    """Writes each batch to a binary stream (stdout by default) and flushes once."""

    name = "console"

    def __init__(self, fmt: str = "auto", stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        chosen = choose_format(fmt, self._stream)
        self._render = render_json if chosen == "json" else render_console

    def write(self, entries: Sequence[LogEntry]) -> None:
        render = self._render
        self._stream.write(b"".join(render(e) for e in entries))
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


def from_context(ctx: SinkContext) -> ConsoleSink:
    """Always on: JSON lines or colour on standard error (or the stream given)."""
    return ConsoleSink(ctx.config.log_format, ctx.console)
