"""What the store holds in memory: per series, the open chunk and full chunks not yet written.

A chunk is cut when it reaches ``max_samples`` or when a sample falls past the end of the
time window (``chunk_range_ms``, aligned to the epoch) its first sample opened, so a chunk
never spans two windows and retention can drop whole rows. Not thread-safe by itself: the
store holds its lock around every call.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from codequal.tsdb.promql import Labels

DEFAULT_CHUNK_RANGE_MS = 2 * 3600 * 1000
DEFAULT_MAX_SAMPLES = 960  # 2 h at a 7.5 s interval; at 15 s a chunk is one 2 h window

_bits = struct.Struct("<d")


@dataclass(slots=True, eq=False)
class Chunk:
    """Samples of one series, sorted; ``db_id`` is the row that holds an earlier copy."""

    ts: array[int] = field(default_factory=lambda: array("q"))
    vs: array[float] = field(default_factory=lambda: array("d"))
    db_id: int | None = None
    written: int = 0  # how many samples the row ``db_id`` holds

    @property
    def dirty(self) -> bool:
        return len(self.ts) != self.written


@dataclass(slots=True, eq=False)
class Head:
    """One series in memory: the chunk being filled and full ones awaiting the flush."""

    series_id: int
    labels: Labels
    window_end: int
    open: Chunk = field(default_factory=Chunk)
    full: list[Chunk] = field(default_factory=list)

    def chunks(self) -> list[Chunk]:
        return [*self.full, self.open] if self.open.ts else list(self.full)

    def last(self) -> int | None:
        if self.open.ts:
            return self.open.ts[-1]
        return self.full[-1].ts[-1] if self.full else None


class AppendOutcome:
    APPENDED = 0
    DUPLICATE = 1  # same timestamp and same value bits: a retry, not an error
    OUT_OF_ORDER = 2


def append(head: Head, t: int, value: float, chunk_range_ms: int, max_samples: int) -> int:
    """Add one sample at the end of the series; returns an :class:`AppendOutcome`."""
    last = head.last()
    if last is not None and t <= last:
        if t == last and _same(head, value):
            return AppendOutcome.DUPLICATE
        return AppendOutcome.OUT_OF_ORDER
    chunk = head.open
    if chunk.ts and (t >= head.window_end or len(chunk.ts) >= max_samples):
        head.full.append(chunk)
        chunk = head.open = Chunk()
    if not chunk.ts:
        head.window_end = (t // chunk_range_ms + 1) * chunk_range_ms
    chunk.ts.append(t)
    chunk.vs.append(value)
    return AppendOutcome.APPENDED


def _same(head: Head, value: float) -> bool:
    chunk = head.open if head.open.ts else head.full[-1]
    return _bits.pack(chunk.vs[-1]) == _bits.pack(value)


def close_expired(head: Head, newest_t: int) -> None:
    """Treat the open chunk as full once its window is over (a series that went quiet)."""
    if head.open.ts and head.window_end <= newest_t:
        head.full.append(head.open)
        head.open = Chunk()


def window(chunk: Chunk, start: int, end: int) -> tuple[array[int], array[float]]:
    """Copies of the chunk's samples in ``[start, end]``."""
    lo = bisect_left(chunk.ts, start)
    hi = bisect_right(chunk.ts, end)
    return chunk.ts[lo:hi], chunk.vs[lo:hi]


def drop_before(head: Head, t: int) -> None:
    """Forget chunks that end before ``t`` (retention)."""
    head.full = [c for c in head.full if c.ts[-1] >= t]
    if head.open.ts and head.open.ts[-1] < t:
        head.open = Chunk()
