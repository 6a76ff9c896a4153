"""The series catalogue in SQL: identity (fingerprints), creation, and matcher push-down.

A series is its metric name plus its sorted labels. Label pairs also go into a postings
table, so every equality matcher (``=``, ``!=``, including the "label absent" forms with an
empty value) narrows the candidates in SQL; regex matchers run in Python on what is left.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from codequal.storage.schema import tsdb_chunks, tsdb_postings, tsdb_series
from codequal.tsdb.promql import Labels, Matcher, MatchOp
from codequal.tsdb.promql.source import matches_all

# PostgreSQL cannot index arbitrarily long strings; no label value we produce comes close.
MAX_LABEL_VALUE_BYTES = 1024
MAX_LABEL_NAME_CHARS = 200
IN_BATCH = 500  # ids per IN (...) list: well inside SQLite's and PostgreSQL's limits
# Bound parameters per statement: 999 is the limit of SQLite builds before 3.32.
SQLITE_PARAMS = 999
PG_BATCH = 10_000  # rows per unnest() array statement on PostgreSQL


def fingerprint(labels: Labels) -> str:
    """A stable 128-bit hash of the label set, hex (bytes that cannot occur in UTF-8 split)."""
    canonical = b"\xff".join([k.encode() + b"\xfe" + v.encode() for k, v in labels])
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def label_problem(labels: Labels) -> str | None:
    """Why the store cannot index ``labels``, or None when it can."""
    for name, value in labels:
        if len(name) > MAX_LABEL_NAME_CHARS:
            return f"label name {name[:40]!r}... is longer than {MAX_LABEL_NAME_CHARS} characters"
        # A character is at most 4 bytes in UTF-8: most values need no encoding to be sure.
        if len(value) > MAX_LABEL_VALUE_BYTES // 4 and len(value.encode()) > MAX_LABEL_VALUE_BYTES:
            return f"the value of label {name!r} is longer than {MAX_LABEL_VALUE_BYTES} bytes"
    return None


def batched(items: Sequence[Any], size: int = IN_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def labels_from_json(value: Any) -> Labels:
    # JSONB does not keep key order, so sort on the way out.
    return Labels(sorted(value.items()))


def ensure_series(conn: Connection, wanted: Iterable[Labels], created_ms: int) -> dict[Labels, int]:
    """The ids of ``wanted`` label sets, creating the missing series (safe under races).

    A remote write or OTLP client's first request brings thousands of new series: they are
    inserted a few hundred rows per statement, their ids come back from ``RETURNING`` (no second
    look-up), and only the series this call created get postings. A series another writer
    created meanwhile is skipped by ``ON CONFLICT`` and looked up (its postings are its
    creator's, committed with it)."""
    by_fp = {fingerprint(labels): labels for labels in wanted}
    ids = _ids_by_fingerprint(conn, list(by_fp))
    missing = [(fp, _json(labels), created_ms) for fp, labels in by_fp.items() if fp not in ids]
    if missing:
        created = _insert_series(conn, missing)
        lost = [fp for fp, _, _ in missing if fp not in created]
        if lost:
            ids.update(_ids_by_fingerprint(conn, lost))
        _insert_postings(
            conn, [(name, value, id_) for fp, id_ in created.items() for name, value in by_fp[fp]]
        )
        ids.update(created)
    return {labels: ids[fp] for fp, labels in by_fp.items()}


def _insert_series(conn: Connection, rows: list[tuple[str, str, int]]) -> dict[str, int]:
    """Insert series rows (fingerprint, labels JSON, created ms); the ids of those inserted."""
    if conn.dialect.name == "postgresql":
        sql = (
            "INSERT INTO tsdb_series (fingerprint, labels, created_ms) "
            "SELECT f, l::jsonb, c FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS u(f, l, c) "
            "ON CONFLICT DO NOTHING RETURNING fingerprint, id"
        )
        return dict(_unnest(conn, sql, rows))
    into = "tsdb_series (fingerprint, labels, created_ms)"
    if sqlite3.sqlite_version_info < (3, 35):  # no RETURNING: insert, then look the rows up
        _sqlite_values(conn, into, rows, returning="")
        return _ids_by_fingerprint(conn, [fp for fp, _, _ in rows])
    return dict(_sqlite_values(conn, into, rows, returning="fingerprint, id"))


def _insert_postings(conn: Connection, rows: list[tuple[str, str, int]]) -> None:
    rows.sort()  # in index order: the inserts walk the primary key's b-tree forwards
    if conn.dialect.name == "postgresql":
        sql = (
            "INSERT INTO tsdb_postings (name, value, series_id) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) ON CONFLICT DO NOTHING"
        )
        _unnest(conn, sql, rows)
    else:
        _sqlite_values(conn, "tsdb_postings (name, value, series_id)", rows, returning="")


def _unnest(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """PostgreSQL: ``sql`` with one array parameter per column, PG_BATCH rows at a time."""
    out: list[tuple[Any, ...]] = []
    for part in batched(rows, PG_BATCH):
        result = conn.exec_driver_sql(
            sql, tuple(list(column) for column in zip(*part, strict=True))
        )
        if result.returns_rows:
            out.extend(tuple(row) for row in result)
    return out


def _sqlite_values(
    conn: Connection, into: str, rows: Sequence[tuple[Any, ...]], returning: str
) -> list[tuple[Any, ...]]:
    """SQLite: a multi-row ``INSERT ... ON CONFLICT DO NOTHING`` of ``rows``.

    On the driver's cursor (the same connection and transaction): a new series' rows are
    thousands of parameters, and its ids come back as plain tuples, not result rows."""
    width = len(rows[0]) if rows else 1
    one = "(" + ", ".join("?" * width) + ")"
    tail = " ON CONFLICT DO NOTHING" + (f" RETURNING {returning}" if returning else "")
    out: list[tuple[Any, ...]] = []
    cursor = conn.connection.cursor()
    try:
        for part in batched(rows, SQLITE_PARAMS // width):
            sql = f"INSERT INTO {into} VALUES " + ", ".join([one] * len(part)) + tail  # noqa: S608
            cursor.execute(sql, list(chain.from_iterable(part)))
            if returning:
                out.extend(cursor.fetchall())
    finally:
        cursor.close()
    return out


def _ids_by_fingerprint(conn: Connection, fps: Sequence[str]) -> dict[str, int]:
    select = "SELECT fingerprint, id FROM tsdb_series WHERE fingerprint"
    out: dict[str, int] = {}
    if conn.dialect.name == "postgresql":
        for part in batched(fps, PG_BATCH):
            out.update(conn.exec_driver_sql(f"{select} = ANY(%s)", (list(part),)).all())
        return out
    for part in batched(fps, SQLITE_PARAMS):
        marks = ", ".join("?" * len(part))
        out.update(conn.exec_driver_sql(f"{select} IN ({marks})", tuple(part)).all())
    return out


def _json(labels: Labels) -> str:
    return orjson.dumps(dict(labels)).decode()


def _posting_ids(name: str, value: str | None) -> sa.Select[Any]:
    stmt = sa.select(tsdb_postings.c.series_id).where(tsdb_postings.c.name == name)
    return stmt if value is None else stmt.where(tsdb_postings.c.value == value)


def _pushed_down(matcher: Matcher) -> sa.ColumnElement[bool] | None:
    """The SQL condition for an equality matcher; None for regexes (Python does those)."""
    series_id = tsdb_series.c.id
    if matcher.op is MatchOp.EQUAL:
        if matcher.value == "":  # an empty value means "the label is absent"
            return series_id.not_in(_posting_ids(matcher.name, None))
        return series_id.in_(_posting_ids(matcher.name, matcher.value))
    if matcher.op is MatchOp.NOT_EQUAL:
        if matcher.value == "":
            return series_id.in_(_posting_ids(matcher.name, None))
        return series_id.not_in(_posting_ids(matcher.name, matcher.value))
    return None


def matching_series(
    conn: Connection, matchers: Sequence[Matcher], start: int | None = None, end: int | None = None
) -> dict[int, Labels]:
    """Series matching every matcher; with ``start``/``end``, only those with a stored chunk
    overlapping that window (the caller adds what is still in memory)."""
    stmt = sa.select(tsdb_series.c.id, tsdb_series.c.labels)
    for matcher in matchers:
        condition = _pushed_down(matcher)
        if condition is not None:
            stmt = stmt.where(condition)
    if start is not None or end is not None:
        overlapping = sa.select(tsdb_chunks.c.series_id).where(
            tsdb_chunks.c.max_t >= (start if start is not None else -(2**62)),
            tsdb_chunks.c.min_t <= (end if end is not None else 2**62),
        )
        stmt = stmt.where(tsdb_series.c.id.in_(overlapping))
    rest = [m for m in matchers if m.op in (MatchOp.REGEX, MatchOp.NOT_REGEX)]
    out = {}
    for series_id, raw in conn.execute(stmt):
        labels = labels_from_json(raw)
        if matches_all(labels, rest):
            out[series_id] = labels
    return out


def series_labels(conn: Connection, ids: Sequence[int]) -> dict[int, Labels]:
    """The labels of the series with these ids."""
    out: dict[int, Labels] = {}
    for part in batched(ids):
        stmt = sa.select(tsdb_series.c.id, tsdb_series.c.labels).where(tsdb_series.c.id.in_(part))
        out.update({series_id: labels_from_json(raw) for series_id, raw in conn.execute(stmt)})
    return out


# Sorted in Python: PostgreSQL's ORDER BY follows the database's collation, Prometheus's
# answers are in byte order.
def label_names(conn: Connection) -> list[str]:
    return sorted(conn.execute(sa.select(tsdb_postings.c.name).distinct()).scalars())


def label_values(conn: Connection, name: str) -> list[str]:
    stmt = sa.select(tsdb_postings.c.value).where(tsdb_postings.c.name == name).distinct()
    return sorted(conn.execute(stmt).scalars())
