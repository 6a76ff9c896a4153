"""Log entries in the embedded store: batched writes and filtered, cursor-paged reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from codequal.storage.db import Database
from codequal.storage.schema import log_entries
from codequal.telemetry.logging import ErrorInfo, LogEntry
from codequal.vocabulary import LEVELS, level_rank


@dataclass(frozen=True)
class LogQuery:
    """Filters for :meth:`LogStore.query`; every field is optional."""

    level: str | None = None  # this level and above
    service: str | None = None
    action: str | None = None
    trace_id: str | None = None
    repository_url: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None
    before_id: int | None = None  # cursor: entries older than this id
    limit: int = 100


_COLUMNS = (
    "ts",
    "level",
    "service",
    "trace_id",
    "user_id",
    "repository_url",
    "action",
    "duration",
    "error",
    "metadata",
)


# The searched text of migration 0012, written as its index and backfill write it.
TRIGRAM = 3
_PG_SEARCH_TEXT = sa.literal_column(
    "left(log_entries.action || E'\\n' || coalesce(log_entries.error::text, '') || E'\\n' "
    "|| coalesce(log_entries.metadata::text, ''), 8192)",
    sa.Text,
)
_SQLITE_SEARCH_TEXT = sa.literal_column(
    "substr(log_entries.action || char(10) || coalesce(log_entries.error, '') || char(10) "
    "|| coalesce(log_entries.metadata, ''), 1, 8192)",
    sa.Text,
)
# The FTS5 table: its own name is the column MATCH takes.
_INDEX_NEWEST = (
    "INSERT INTO log_search(rowid, body) SELECT id, substr(action || char(10) || "
    "coalesce(error, '') || char(10) || coalesce(metadata, ''), 1, 8192) FROM log_entries "
    "WHERE id > (SELECT max(id) FROM log_entries) - ?"
)
_SEARCH = sa.table("log_search", sa.column("rowid"), sa.column("log_search"))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class LogStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # The log writer is the hottest insert we have: plain DBAPI executemany with tuples
        # costs a third of SQLAlchemy's per-row compilation (bench/bench_logging.py).
        self._insert_sql = db.insert_sql("log_entries", _COLUMNS)

    def write(self, entries: Sequence[LogEntry]) -> None:
        """Insert a batch in one transaction."""
        if not entries:
            return
        rows = [
            (
                e.timestamp,
                e.level,
                e.service,
                e.trace_id,
                e.user_id,
                e.repository_url,
                e.action[:500],
                e.duration,
                _json(e.error.to_dict()) if e.error is not None else None,
                _json(e.metadata) if e.metadata else None,
            )
            for e in entries
        ]
        with self._db.engine.begin() as conn:
            conn.exec_driver_sql(self._insert_sql, rows)
            if self._db.dialect == "sqlite":
                # This transaction holds SQLite's write lock: the batch has the newest ids.
                conn.exec_driver_sql(_INDEX_NEWEST, (len(rows),))

    def query(self, q: LogQuery) -> list[dict[str, Any]]:
        """Newest first; pass the last row's ``id`` as ``before_id`` for the next page."""
        t = log_entries
        stmt = sa.select(t).order_by(t.c.id.desc()).limit(q.limit)
        if q.level is not None:
            stmt = stmt.where(t.c.level.in_(LEVELS[level_rank(q.level) :]))
        for column, value in (
            (t.c.service, q.service),
            (t.c.action, q.action),
            (t.c.trace_id, q.trace_id),
            (t.c.repository_url, q.repository_url),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if q.since is not None:
            stmt = stmt.where(t.c.ts >= q.since)
        if q.until is not None:
            stmt = stmt.where(t.c.ts < q.until)
        if q.before_id is not None:
            stmt = stmt.where(t.c.id < q.before_id)
        if q.text:
            stmt = stmt.where(self._matches(q.text))
        with self._db.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    def _matches(self, text: str) -> sa.ColumnElement[bool]:
        """Entries whose action, error or fields hold ``text`` (any case), through the search
        index of migration 0012: FTS5 trigrams on SQLite, a pg_trgm GIN index on PostgreSQL."""
        # Stored text never holds NUL (ingest replaces it), and neither FTS5 nor PostgreSQL
        # takes one in a query.
        text = text.replace("\x00", "\ufffd")
        if self._db.dialect == "postgresql":
            return _PG_SEARCH_TEXT.ilike(f"%{_escape_like(text)}%", escape="\\")
        if len(text) >= TRIGRAM:
            phrase = '"' + text.replace('"', '""') + '"'  # one FTS5 phrase: a substring match
            found = sa.select(_SEARCH.c.rowid).where(_SEARCH.c.log_search.op("MATCH")(phrase))
            return log_entries.c.id.in_(found)
        # Under three characters FTS5 trigrams cannot answer: scan, as before the index.
        return _SQLITE_SEARCH_TEXT.like(f"%{_escape_like(text)}%", escape="\\")

    def last_id(self) -> int:
        """The newest entry's id (0 when empty): a starting point for :meth:`critical_after`."""
        with self._db.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(log_entries.c.id))).scalar() or 0)

    def critical_after(self, after_id: int, limit: int = 500) -> list[tuple[int, LogEntry]]:
        """``critical`` entries with an id above ``after_id``, oldest first, with their ids."""
        t = log_entries
        stmt = (
            sa.select(t)
            .where(t.c.id > after_id, t.c.level == "critical")
            .order_by(t.c.id)
            .limit(limit)
        )
        with self._db.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for row in rows:
            error = row["error"]
            entry = LogEntry(
                timestamp=row["ts"],
                level="critical",
                service=row["service"],
                trace_id=row["trace_id"],
                action=row["action"],
                user_id=row["user_id"],
                repository_url=row["repository_url"],
                duration=row["duration"],
                error=(
                    ErrorInfo(str(error.get("type", "")), str(error.get("message", "")))
                    if isinstance(error, dict)
                    else None
                ),
            )
            out.append((int(row["id"]), entry))
        return out

    def count(self) -> int:
        with self._db.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(log_entries)).scalar_one()
            )


def _json(value: Any) -> str:
    """Metadata may hold anything a caller passed: keep JSON types, stringify the rest."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
