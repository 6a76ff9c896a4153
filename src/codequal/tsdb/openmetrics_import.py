"""Backfill the store from an OpenMetrics file (``codequal tsdb import FILE``).

Two passes over the file: the first validates all of it and touches nothing, the second
writes every chunk in one transaction. A bad file therefore changes nothing, and a failure
while writing (a full disk, a lost connection) rolls everything back.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from codequal.storage.db import Database
from codequal.storage.schema import tsdb_chunks
from codequal.tsdb import chunks, head
from codequal.tsdb.head import DEFAULT_CHUNK_RANGE_MS, DEFAULT_MAX_SAMPLES
from codequal.tsdb.openmetrics import OpenMetricsError, Problem, Summary, samples, validate
from codequal.tsdb.promql import Labels
from codequal.tsdb.series_index import ensure_series

INSERT_BATCH = 1000


class ImportReport(NamedTuple):
    samples: int
    series: int
    chunks: int
    min_t: int | None  # ms
    max_t: int | None


class _ChunkWriter:
    """Cuts each series into chunks as the store's heads do, and inserts them in batches."""

    def __init__(self, conn: Connection, ids: Mapping[Labels, int], range_ms: int, max_n: int):
        self._conn, self._range, self._max = conn, range_ms, max_n
        self._heads = {labels: head.Head(sid, labels, window_end=0) for labels, sid in ids.items()}
        self._rows: list[dict[str, Any]] = []
        self.written = 0

    def add(self, labels: Labels, t: int, value: float) -> None:
        target = self._heads[labels]
        outcome = head.append(target, t, value, self._range, self._max)
        if outcome == head.AppendOutcome.OUT_OF_ORDER:  # validate() has ruled this out
            raise RuntimeError(f"{labels}: sample at {t} out of order; did the file change?")
        if target.full:
            self._queue(target)

    def _queue(self, target: head.Head) -> None:
        for c in target.chunks():
            self._rows.append(
                {
                    "series_id": target.series_id,
                    "min_t": c.ts[0],
                    "max_t": c.ts[-1],
                    "samples": len(c.ts),
                    "data": chunks.encode(c.ts, c.vs),
                }
            )
        target.full.clear()
        if len(self._rows) >= INSERT_BATCH:
            self._insert()

    def _insert(self) -> None:
        if self._rows:
            self._conn.execute(tsdb_chunks.insert(), self._rows)
            self.written += len(self._rows)
            self._rows = []

    def finish(self) -> None:
        for target in self._heads.values():
            if target.open.ts:
                target.full.append(target.open)
                target.open = head.Chunk()
            self._queue(target)
        self._insert()


def import_openmetrics(
    db: Database,
    path: Path,
    *,
    chunk_range_ms: int = DEFAULT_CHUNK_RANGE_MS,
    max_chunk_samples: int = DEFAULT_MAX_SAMPLES,
) -> ImportReport:
    """Validate ``path`` whole, then store all of it in one transaction.

    Raises :class:`~codequal.tsdb.openmetrics.OpenMetricsError` (nothing written) when any
    line is bad, and ``OSError`` when the file cannot be read.
    """
    with path.open("rb") as text:
        summary = validate(text)
    with db.engine.begin() as conn:
        ids = ensure_series(conn, summary.series, summary.min_t or 0)
        writer = _ChunkWriter(conn, ids, chunk_range_ms, max_chunk_samples)
        _write(path, writer)
    return ImportReport(
        summary.samples, len(summary.series), writer.written, summary.min_t, summary.max_t
    )


def _write(path: Path, writer: _ChunkWriter) -> None:
    with path.open("rb") as text:
        for item in samples(text):
            if isinstance(item, Problem):  # the file changed since it was validated
                raise OpenMetricsError([item], 1)
            writer.add(item.labels, item.t, item.value)
    writer.finish()


__all__ = ["ImportReport", "OpenMetricsError", "Summary", "import_openmetrics"]
