"""Runs of decoded samples: the cache of decoded chunk rows, and merging runs into a series."""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from typing import TypeAlias

from codequal.tsdb import head

Segment: TypeAlias = "tuple[array[int], array[float]]"  # array is generic at runtime from 3.12


class DecodedCache:
    """Decoded chunk rows by (id, sample count), least recently used out first."""

    def __init__(self, max_samples: int) -> None:
        self._max = max_samples
        self._size = 0
        self._items: OrderedDict[tuple[int, int], Segment] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> Segment | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple[int, int], segment: Segment) -> None:
        with self._lock:
            if key not in self._items:
                self._items[key] = segment
                self._size += key[1]
            while self._size > self._max and self._items:
                (_, count), _ = self._items.popitem(last=False)
                self._size -= count


def merge(segments: list[Segment], start: int, end: int) -> Segment:
    """One sorted run from stored and in-memory segments, clipped to ``[start, end]``."""
    ordered = sorted((s for s in segments if s[0]), key=lambda s: s[0][0])
    ts, vs = array("q"), array("d")
    for seg_ts, seg_vs in ordered:
        if ts and seg_ts[0] <= ts[-1]:
            return _merge_overlapping(segments, start, end)
        if seg_ts[0] >= start and seg_ts[-1] <= end:
            ts.extend(seg_ts)
            vs.extend(seg_vs)
        else:
            part_ts, part_vs = head.window(head.Chunk(seg_ts, seg_vs), start, end)
            ts.extend(part_ts)
            vs.extend(part_vs)
    return ts, vs


def _merge_overlapping(segments: list[Segment], start: int, end: int) -> Segment:
    # Rare: an import over existing data, or a chunk flushed while being read. Later
    # segments (memory comes last) win for a timestamp present twice.
    merged: dict[int, float] = {}
    for seg_ts, seg_vs in segments:
        merged.update(zip(seg_ts, seg_vs, strict=True))
    order = sorted(t for t in merged if start <= t <= end)
    return array("q", order), array("d", [merged[t] for t in order])
