"""The embedded metric history: samples in compressed chunks in SQL, recent ones in memory.

Appends go to an in-memory head chunk per series (:mod:`codequal.tsdb.head`). ``flush``
writes full chunks and rewrites each open chunk's row in place, so a crash loses at most one
flush interval and rows stay one per series per ~2 h window (:mod:`codequal.tsdb.chunks`).
Reads merge stored chunks with memory. One process must use one store per database
(:func:`store_for`): a second store would not see the first one's unflushed samples.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

import codequal.storage.schema  # noqa: F401 - registers the tables on the metadata
from codequal.storage.db import Database
from codequal.storage.schema import tsdb_chunks, tsdb_postings, tsdb_series
from codequal.tsdb import chunks, head, series_index
from codequal.tsdb.head import DEFAULT_CHUNK_RANGE_MS, DEFAULT_MAX_SAMPLES, Head
from codequal.tsdb.promql import Labels, Matcher, Series
from codequal.tsdb.promql.limits import TooManySamples
from codequal.tsdb.promql.source import matches_all
from codequal.tsdb.segments import DecodedCache, Segment, merge

SampleInput = tuple[Mapping[str, str] | Labels, int, float]
Listener = Callable[[Sequence[tuple[Labels, int, float]]], None]
WRITE_BATCH = 500  # chunks per transaction: a flush with a deadline stops between batches
# Decoded samples kept for re-reads (16 bytes each, ~190 MB): every rule round reads the
# history its longest windows cover, and a least-recently-used cache smaller than what one
# round scans never hits. 12 M is 2 000 series x 24 h at 15 s.
DEFAULT_CACHE_SAMPLES = 12_000_000
LABEL_CACHE_SIZE = 100_000
RUN_SAMPLES = 2_000_000  # samples select_batches hands over at once (~32 MB decoded)
_ALL_TIME = (-(2**62), 2**62)
_UPDATE_CHUNK = (
    tsdb_chunks.update()
    .where(tsdb_chunks.c.id == sa.bindparam("row_id"))
    .values({k: sa.bindparam(k) for k in ("min_t", "max_t", "samples", "data")})
)


class AppendResult(NamedTuple):
    appended: int
    duplicates: int = 0  # same timestamp and value again: ignored
    out_of_order: int = 0  # older than the series' newest sample: dropped
    rejected: int = 0  # labels the store cannot index (see series_index.label_problem)


class FlushResult(NamedTuple):
    written: int  # chunk rows inserted or rewritten
    remaining: int  # dirty chunks left in memory because the deadline passed


class SampleStore:
    """A :class:`~codequal.tsdb.promql.SeriesSource` over SQLite or PostgreSQL."""

    def __init__(
        self,
        db: Database,
        *,
        chunk_range_ms: int = DEFAULT_CHUNK_RANGE_MS,
        max_chunk_samples: int = DEFAULT_MAX_SAMPLES,
        cache_samples: int = DEFAULT_CACHE_SAMPLES,
    ) -> None:
        if not 1 <= max_chunk_samples <= chunks.MAX_SAMPLES or chunk_range_ms <= 0:
            raise ValueError(f"max_chunk_samples must be 1..{chunks.MAX_SAMPLES}")
        self._db = db
        self._range = chunk_range_ms
        self._max_samples = max_chunk_samples
        self._cache = DecodedCache(cache_samples)
        self._lock = threading.Lock()  # guards the dicts below and every Head
        self._flush_lock = threading.Lock()
        self._ids: dict[Labels, int] = {}
        self._heads: dict[int, Head] = {}
        self._by_labels: dict[Labels, Head] = {}  # the same heads, found by their labels
        # And by the identity of the Labels object each head holds. A decoder that keeps its
        # senders' Labels objects (remote write does) hands the same object with every sample:
        # an int key then finds the head without hashing the labels, which at tens of thousands
        # of series is mostly cache misses. The head keeps its labels alive, so while an entry
        # exists no other object can have its id.
        self._by_identity: dict[int, Head] = {}
        self._label_cache: dict[tuple[tuple[str, str], ...], Labels] = {}
        self._newest = -(2**62)
        self._listeners: list[Listener] = []

    # -- writing ----------------------------------------------------------------------------

    def append(self, samples: Iterable[SampleInput]) -> AppendResult:
        """Add samples (labels including ``__name__``, time in ms, value) to the heads."""
        return self.append_resolved(
            [(self._labels(labels), int(t), float(v)) for labels, t, v in samples]
        )

    def append_resolved(self, batch: list[tuple[Labels, int, float]]) -> AppendResult:
        """:meth:`append` for samples already typed as the store keeps them: ``Labels``, an
        ``int`` time and a ``float`` value (what the ingest decoders produce)."""
        counts = [0, 0, 0, 0]  # indexed by head.AppendOutcome, then rejected
        new: list[tuple[Labels, int, float]] = []  # samples of series without a head yet
        with self._lock:
            self._append_known(batch, counts, new)
        if new:  # all of a new series' samples are here, in order: no head was made above
            self._resolve(new)
            with self._lock:
                for labels, _, _ in new:
                    if labels not in self._by_labels:
                        self._new_head(labels)
                rejected: list[tuple[Labels, int, float]] = []
                self._append_known(new, counts, rejected)
            counts[3] += len(rejected)
        for listener in self._listeners:
            listener(batch)
        return AppendResult(*counts)

    def _append_known(
        self,
        batch: list[tuple[Labels, int, float]],
        counts: list[int],
        unknown: list[tuple[Labels, int, float]],
    ) -> None:
        """Append the samples of series with a head (the lock held); the others to ``unknown``."""
        heads, by_identity, identity = self._by_labels, self._by_identity, id
        newest = self._newest
        for item in batch:
            labels, t, value = item
            target = by_identity.get(identity(labels))
            if target is None:
                target = heads.get(labels)
                if target is None:
                    unknown.append(item)
                    continue
            ts = target.open.ts
            # The common case inline: the next sample of a chunk with room left.
            if ts and ts[-1] < t < target.window_end and len(ts) < self._max_samples:
                ts.append(t)
                target.open.vs.append(value)
                counts[0] += 1
            else:
                counts[head.append(target, t, value, self._range, self._max_samples)] += 1
            if t > newest:  # noqa: PLR1730 - a comparison costs less than a call, per sample
                newest = t
        self._newest = newest

    def subscribe(self, listener: Listener) -> None:
        """Also hand every appended batch (labels resolved, rejected samples included) to
        ``listener``, on the appending thread: it must be quick and must not raise."""
        self._listeners.append(listener)

    def _labels(self, labels: Mapping[str, str] | Labels) -> Labels:
        # Scrapes repeat the same label dicts: building a sorted Labels once per series (not
        # once per sample) is most of what makes appends cheap.
        if isinstance(labels, Labels):
            return labels
        key = tuple(labels.items())
        found = self._label_cache.get(key)
        if found is None:
            if len(self._label_cache) >= LABEL_CACHE_SIZE:
                self._label_cache.clear()
            found = self._label_cache[key] = Labels.of(labels)
        return found

    def _resolve(self, batch: list[tuple[Labels, int, float]]) -> None:
        """Find or create the series rows of label sets this process has not seen yet."""
        with self._lock:
            unknown = {lb for lb, _, _ in batch if lb not in self._ids}
        wanted = {lb for lb in unknown if series_index.label_problem(lb) is None}
        if wanted:
            with self._db.engine.begin() as conn:
                created = series_index.ensure_series(conn, wanted, min(t for _, t, _ in batch))
            with self._lock:
                self._ids.update(created)

    def _new_head(self, labels: Labels) -> Head | None:
        series_id = self._ids.get(labels)
        if series_id is None:  # labels the store cannot index, or deleted by retention
            return None
        found = self._heads[series_id] = self._by_labels[labels] = Head(series_id, labels, 0)
        self._by_identity[id(labels)] = found
        return found

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Write full chunks and the open chunks' new samples; stop at the deadline."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # Another flush (the scraper's) may be running: wait for it only until the deadline.
        if not self._flush_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            with self._lock:
                return FlushResult(
                    0, sum(c.dirty for h in self._heads.values() for c in h.chunks())
                )
        try:
            work = self._dirty_chunks()
            written = 0
            for start in range(0, len(work), WRITE_BATCH):
                if deadline is not None and time.monotonic() > deadline:
                    break
                batch = work[start : start + WRITE_BATCH]
                self._write(batch)
                written += len(batch)
            self._forget_written()
        finally:
            self._flush_lock.release()
        return FlushResult(written, len(work) - written)

    def _dirty_chunks(self) -> list[tuple[Head, head.Chunk, int]]:
        """What to write: each chunk with samples not in its row yet, and how many it has."""
        with self._lock:
            for h in self._heads.values():
                head.close_expired(h, self._newest)
            return [(h, c, len(c.ts)) for h in self._heads.values() for c in h.chunks() if c.dirty]

    def _write(self, batch: list[tuple[Head, head.Chunk, int]]) -> None:
        rows = [
            {
                "series_id": h.series_id,
                "min_t": c.ts[0],
                "max_t": c.ts[n - 1],
                "samples": n,
                "data": chunks.encode(c.ts[:n], c.vs[:n]),
            }
            for h, c, n in batch
        ]
        pairs = list(zip(rows, batch, strict=True))
        updates = [dict(row, row_id=c.db_id) for row, (_, c, _) in pairs if c.db_id is not None]
        inserts = [row for row, (_, c, _) in pairs if c.db_id is None]
        with self._db.engine.begin() as conn:
            if updates:
                conn.execute(_UPDATE_CHUNK, updates)
            new_ids = iter(_insert_chunks(conn, inserts))
        with self._lock:
            for _, c, n in batch:
                if c.db_id is None:
                    c.db_id = next(new_ids)
                c.written = n

    def _forget_written(self) -> None:
        with self._lock:
            for series_id, h in list(self._heads.items()):
                h.full = [c for c in h.full if c.dirty]
                if not h.full and not h.open.ts:
                    del self._heads[series_id]  # quiet since its window ended: all stored
                    del self._by_labels[h.labels]
                    del self._by_identity[id(h.labels)]

    # -- reading ----------------------------------------------------------------------------

    def select(self, matchers: Sequence[Matcher], start: int, end: int) -> list[Series]:
        """Series matching all matchers with their samples in ``[start, end]`` (ms)."""
        return self.select_bounded(matchers, start, end, None)

    def select_bounded(
        self, matchers: Sequence[Matcher], start: int, end: int, max_samples: int | None
    ) -> list[Series]:
        """``select``, refused with :class:`TooManySamples` before decoding when the chunks
        it would read hold more than ``max_samples`` samples."""
        with self._db.engine.connect() as conn:
            found = series_index.matching_series(conn, matchers)
            # Memory first: a chunk flushed meanwhile is then in both, and merging dedups.
            memory, skip = self._memory(found, start, end)
            if max_samples is not None:
                max_samples -= sum(len(seg[0]) for segs in memory.values() for seg in segs)
            stored = self._stored(conn, list(found), start, end, skip, max_samples=max_samples)
        out = []
        for series_id, labels in found.items():
            segments = stored.get(series_id, []) + memory.get(series_id, [])
            ts, vs = merge(segments, start, end)
            if ts:
                out.append(Series(labels, ts, vs))
        return out

    def select_batches(
        self, matchers: Sequence[Matcher], start: int, end: int, max_samples: int
    ) -> Iterator[list[Series]]:
        """The selection in runs of series in label order, each run holding about
        RUN_SAMPLES samples and never more than ``max_samples`` (a single series holding more
        raises TooManySamples), so a long window over many series is read a run at a time.
        Sample counts come from the chunk rows before any is decoded."""
        with self._db.engine.connect() as conn:
            found = series_index.matching_series(conn, matchers)
            memory, skip = self._memory(found, start, end)
            counts = self._stored_counts(conn, list(found), start, end, skip)
            run: list[tuple[int, Labels]] = []
            size = 0
            for series_id, labels in sorted(found.items(), key=lambda item: item[1]):
                n = counts.get(series_id, 0) + sum(len(seg[0]) for seg in memory.get(series_id, []))
                if n > max_samples:
                    raise TooManySamples
                if run and size + n > min(max_samples, RUN_SAMPLES):
                    yield self._read(conn, run, (memory, skip), (start, end))
                    run, size = [], 0
                run.append((series_id, labels))
                size += n
            if run:
                yield self._read(conn, run, (memory, skip), (start, end))

    def _read(
        self,
        conn: Connection,
        run: list[tuple[int, Labels]],
        in_memory: tuple[dict[int, list[Segment]], set[int]],
        window: tuple[int, int],
    ) -> list[Series]:
        (memory, skip), (start, end) = in_memory, window
        stored = self._stored(conn, [series_id for series_id, _ in run], start, end, skip)
        out = []
        for series_id, labels in run:
            ts, vs = merge(stored.get(series_id, []) + memory.get(series_id, []), start, end)
            if ts:
                out.append(Series(labels, ts, vs))
        return out

    def _stored_counts(
        self, conn: Connection, ids: list[int], start: int, end: int, skip: set[int]
    ) -> dict[int, int]:
        """Samples per series in the chunk rows overlapping the window (not decoded)."""
        counts: dict[int, int] = {}
        columns = (tsdb_chunks.c.id, tsdb_chunks.c.series_id, tsdb_chunks.c.samples)
        for part in series_index.batched(ids):
            stmt = (
                sa.select(*columns)
                .where(tsdb_chunks.c.series_id.in_(part))
                .where(tsdb_chunks.c.max_t >= start, tsdb_chunks.c.min_t <= end)
            )
            for cid, sid, n in conn.execute(stmt):
                if cid not in skip:
                    counts[sid] = counts.get(sid, 0) + n
        return counts

    def _memory(
        self, wanted: Mapping[int, Labels], start: int, end: int
    ) -> tuple[dict[int, list[Segment]], set[int]]:
        memory: dict[int, list[Segment]] = {}
        skip: set[int] = set()
        with self._lock:
            for series_id in wanted:
                h = self._heads.get(series_id)
                if h is None:
                    continue
                for c in h.chunks():
                    if c.db_id is not None:
                        skip.add(c.db_id)
                    if c.ts[0] <= end and c.ts[-1] >= start:
                        memory.setdefault(series_id, []).append(head.window(c, start, end))
        return memory, skip

    def _stored(
        self,
        conn: Connection,
        ids: list[int],
        start: int,
        end: int,
        skip: set[int],
        *,
        max_samples: int | None = None,
    ) -> dict[int, list[Segment]]:
        # One statement per batch (blobs included, even when cached): each sees one
        # snapshot, so a chunk rewritten by another process meanwhile is never half-seen.
        # The compressed rows are all read before any is decoded: their sample counts say
        # whether the selection fits the query's budget, and they are ~1 byte a sample.
        rows = []
        total = 0
        columns = (tsdb_chunks.c.id, tsdb_chunks.c.series_id, tsdb_chunks.c.samples)
        for part in series_index.batched(ids):
            stmt = (
                sa.select(*columns, tsdb_chunks.c.data)
                .where(tsdb_chunks.c.series_id.in_(part))
                .where(tsdb_chunks.c.max_t >= start, tsdb_chunks.c.min_t <= end)
            )
            for row in conn.execute(stmt):
                if row[0] not in skip:
                    rows.append(row)
                    total += row[2]
            if max_samples is not None and total > max_samples:
                raise TooManySamples
        out: dict[int, list[Segment]] = {}
        for cid, sid, n, data in rows:
            segment = self._cache.get((cid, n))
            if segment is None:
                segment = chunks.decode(data)
                self._cache.put((cid, n), segment)
            out.setdefault(sid, []).append(segment)
        return out

    def series(
        self, matchers: Sequence[Matcher], start: int | None = None, end: int | None = None
    ) -> list[Labels]:
        """Label sets of the series matching ``matchers`` with samples in the window."""
        lo, hi = _ALL_TIME[0] if start is None else start, _ALL_TIME[1] if end is None else end
        with self._db.engine.connect() as conn:
            found = series_index.matching_series(conn, matchers, lo, hi)
        with self._lock:
            for h in self._heads.values():
                fresh = h.series_id not in found and _in_window(h, lo, hi)
                if fresh and matches_all(h.labels, matchers):
                    found[h.series_id] = h.labels
        return sorted(found.values())

    def label_names(
        self, matchers: Sequence[Matcher] = (), start: int | None = None, end: int | None = None
    ) -> list[str]:
        """Label names in use (by the matching series, in the window, when given)."""
        if not matchers and start is None and end is None:
            with self._db.engine.connect() as conn:
                return series_index.label_names(conn)
        return sorted({name for labels in self.series(matchers, start, end) for name, _ in labels})

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        start: int | None = None,
        end: int | None = None,
    ) -> list[str]:
        """The values of label ``name`` (among the matching series in the window, if given)."""
        if not matchers and start is None and end is None:
            with self._db.engine.connect() as conn:
                return series_index.label_values(conn, name)
        values = {labels.get(name) for labels in self.series(matchers, start, end)}
        return sorted(values - {""})

    # -- retention ----------------------------------------------------------------------------

    def delete_before(self, t_ms: int) -> int:
        """Drop every chunk whose newest sample is older than ``t_ms``, and series left empty;
        returns how many chunk rows were deleted."""
        with self._flush_lock:  # a flush must not rewrite a row this deletes
            with self._lock:
                for h in self._heads.values():
                    head.drop_before(h, t_ms)
                live = set(self._heads)
            with self._db.engine.begin() as conn:
                deleted = conn.execute(tsdb_chunks.delete().where(tsdb_chunks.c.max_t < t_ms))
                gone = _delete_empty_series(conn, t_ms, live)
            with self._lock:
                self._ids = {lb: sid for lb, sid in self._ids.items() if sid not in gone}
        return int(deleted.rowcount or 0)

    def memory_samples(self) -> int:
        """Samples held in memory (flushed or not): what a restart would have to re-read."""
        with self._lock:
            return sum(len(c.ts) for h in self._heads.values() for c in h.chunks())


def _in_window(h: Head, start: int, end: int) -> bool:
    return any(c.ts[0] <= end and c.ts[-1] >= start for c in h.chunks())


def _insert_chunks(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    stmt = tsdb_chunks.insert().returning(tsdb_chunks.c.id, sort_by_parameter_order=True)
    return list(conn.execute(stmt, rows).scalars())


def _delete_empty_series(conn: Connection, t_ms: int, live: set[int]) -> set[int]:
    # Only series created before the cut-off: a younger one may be waiting for its first flush.
    has_chunks = sa.select(tsdb_chunks.c.series_id).where(
        tsdb_chunks.c.series_id == tsdb_series.c.id
    )
    stmt = sa.select(tsdb_series.c.id).where(
        tsdb_series.c.created_ms < t_ms, ~sa.exists(has_chunks)
    )
    gone = set(conn.execute(stmt).scalars()) - live
    for part in series_index.batched(sorted(gone)):
        conn.execute(tsdb_series.delete().where(tsdb_series.c.id.in_(part)))
    if gone:
        # The postings have no foreign key to cascade from (migration 0013), nor an index by
        # series: one pass over them drops every row of a deleted series.
        orphan = ~sa.exists().where(tsdb_series.c.id == tsdb_postings.c.series_id)
        conn.execute(tsdb_postings.delete().where(orphan))
    return gone


_stores: weakref.WeakKeyDictionary[Database, SampleStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def store_for(db: Database) -> SampleStore:
    """The process's one store for ``db`` (the scraper writes and the API reads through it)."""
    with _stores_lock:
        store = _stores.get(db)
        if store is None:
            store = _stores[db] = SampleStore(db)
        return store
