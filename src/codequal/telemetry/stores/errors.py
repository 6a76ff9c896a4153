"""Error issues and their events: grouping by fingerprint, status, regressions.

Every write is an ``INSERT ... ON CONFLICT (fingerprint) DO UPDATE``: the database does the
read-modify-write under the row lock, so many processes writing the same fingerprint at once
(PostgreSQL) still make one issue with the exact count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from codequal.storage.db import Database
from codequal.storage.schema import error_events, error_issues
from codequal.telemetry.errors import ErrorEvent

STATUSES = ("unresolved", "resolved", "ignored")
ORDERS = ("last_seen", "first_seen", "count")


@dataclass(frozen=True)
class Issue:
    """A group of events with one fingerprint."""

    id: int
    fingerprint: str
    type: str
    title: str
    culprit: str | None
    level: str
    status: str
    count: int
    first_seen: float
    last_seen: float
    resolved_at: float | None
    regressed_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"issue status must be one of {', '.join(STATUSES)}; got {status!r}")


# Only an occurrence after the resolution reopens: a late event from before does not.
_RECURS = (
    "error_issues.status = 'resolved' "
    "AND excluded.last_seen > COALESCE(error_issues.resolved_at, 0.0)"
)
# Both dialects spell the upsert the same way. The text is built once: building the statement
# through SQLAlchemy Core for every batch cost more than the write itself.
_UPSERT = f"""\
INSERT INTO error_issues
    (fingerprint, type, title, culprit, level, status, count, first_seen, last_seen)
VALUES ({{m}}, {{m}}, {{m}}, {{m}}, {{m}}, 'unresolved', {{m}}, {{m}}, {{m}})
ON CONFLICT (fingerprint) DO UPDATE SET
    count = error_issues.count + excluded.count,
    first_seen = CASE WHEN excluded.first_seen < error_issues.first_seen
        THEN excluded.first_seen ELSE error_issues.first_seen END,
    last_seen = CASE WHEN excluded.last_seen > error_issues.last_seen
        THEN excluded.last_seen ELSE error_issues.last_seen END,
    status = CASE WHEN {_RECURS} THEN 'unresolved' ELSE error_issues.status END,
    regressed_at = CASE WHEN {_RECURS} THEN excluded.last_seen ELSE error_issues.regressed_at END
RETURNING id"""  # noqa: S608 - no value is formatted in, only the driver's placeholder
# A duplicate event id must not abort the batch (the issue's count still includes it).
_INSERT_EVENTS = """\
INSERT INTO error_events (event_id, issue_id, ts, trace_id, payload)
VALUES ({m}, {m}, {m}, {m}, {m})
ON CONFLICT (event_id) DO NOTHING"""


class ErrorStore:
    """Issues and events in the service database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._upsert_sql = _UPSERT.format(m=db.placeholder)
        self._insert_sql = _INSERT_EVENTS.format(m=db.placeholder)

    def record(self, events: Sequence[ErrorEvent]) -> None:
        """Group ``events`` into issues and store them, all in one transaction."""
        groups: dict[str, list[ErrorEvent]] = defaultdict(list)
        for event in events:
            groups[event.fingerprint].append(event)
        if not groups:
            return
        # The driver's own connection: SQLAlchemy's Connection and result objects cost this
        # writer more interpreter time than the statements, and the ingest event loop waits
        # for that interpreter lock. Driver errors are raised as SQLAlchemy's, as before.
        dbapi_error = self._db.engine.dialect.loaded_dbapi.Error
        raw = self._db.engine.raw_connection()
        try:
            self._write(raw, groups)
        except dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(
                self._upsert_sql, None, exc, dbapi_error, dialect=self._db.engine.dialect
            ) from exc
        finally:
            raw.close()  # back to the pool, which rolls back what was not committed

    def _write(self, raw: Any, groups: dict[str, list[ErrorEvent]]) -> None:
        rows: list[tuple[Any, ...]] = []
        cursor = raw.cursor()
        try:
            # A fixed lock order: two batches sharing fingerprints cannot deadlock.
            for fp in sorted(groups):
                group = groups[fp]
                cursor.execute(self._upsert_sql, _issue_values(fp, group))
                issue_id = cursor.fetchone()[0]
                rows.extend(_event_row(event, issue_id) for event in group)
            cursor.executemany(self._insert_sql, rows)
        finally:
            cursor.close()
        raw.commit()

    def get_issue(self, issue_id: int) -> Issue | None:
        with self._db.engine.connect() as conn:
            row = conn.execute(sa.select(error_issues).where(error_issues.c.id == issue_id)).first()
        return _issue(row) if row is not None else None

    def get_issue_by_fingerprint(self, fingerprint: str) -> Issue | None:
        stmt = sa.select(error_issues).where(error_issues.c.fingerprint == fingerprint)
        with self._db.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _issue(row) if row is not None else None

    def list_issues(
        self, status: str | None = None, limit: int = 50, offset: int = 0, order: str = "last_seen"
    ) -> list[Issue]:
        """Issues, most recent (or oldest first seen, or most frequent) first."""
        if order not in ORDERS:
            raise ValueError(f"issue order must be one of {', '.join(ORDERS)}; got {order!r}")
        t = error_issues
        stmt = sa.select(t).order_by(t.c[order].desc(), t.c.id.desc()).limit(limit).offset(offset)
        if status is not None:
            _check_status(status)
            stmt = stmt.where(t.c.status == status)
        with self._db.engine.connect() as conn:
            return [_issue(row) for row in conn.execute(stmt)]

    def set_status(self, issue_id: int, status: str, now: float) -> Issue | None:
        """Mark an issue unresolved, resolved (at ``now``) or ignored; None if there is none."""
        _check_status(status)
        values: dict[str, Any] = {"status": status}
        if status == "resolved":
            values["resolved_at"] = now
        t = error_issues
        stmt = sa.update(t).where(t.c.id == issue_id).values(values).returning(*t.c)
        with self._db.engine.begin() as conn:
            row = conn.execute(stmt).first()
        return _issue(row) if row is not None else None

    def events(self, issue_id: int, limit: int = 50) -> list[ErrorEvent]:
        """The issue's events, newest first."""
        t = error_events
        stmt = (
            sa.select(t.c.payload)
            .where(t.c.issue_id == issue_id)
            .order_by(t.c.ts.desc(), t.c.id.desc())
            .limit(limit)
        )
        with self._db.engine.connect() as conn:
            return [ErrorEvent.from_dict(payload) for payload in conn.execute(stmt).scalars()]

    def latest_event(self, issue_id: int) -> ErrorEvent | None:
        found = self.events(issue_id, limit=1)
        return found[0] if found else None


def _issue_values(fp: str, events: Sequence[ErrorEvent]) -> tuple[Any, ...]:
    first = min(events, key=lambda e: e.timestamp)
    last = max(events, key=lambda e: e.timestamp)
    culprit = (first.culprit or "")[:500] or None
    return (fp, first.type[:200], first.title[:1000], culprit, first.level, len(events),
            first.timestamp, last.timestamp)  # fmt: skip


def _event_row(event: ErrorEvent, issue_id: int) -> tuple[Any, ...]:
    trace_id = event.trace_id[:32] if event.trace_id else None
    return (event.event_id, issue_id, event.timestamp, trace_id, _payload(event))


def _payload(event: ErrorEvent) -> str:
    """The event as :meth:`ErrorEvent.to_dict` would be stored, without copying it first.

    orjson writes a dataclass as an object of its fields in order, and a tuple as an array.
    """
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _issue(row: sa.Row[Any]) -> Issue:
    m = row._mapping
    return Issue(
        id=int(m["id"]),
        fingerprint=m["fingerprint"],
        type=m["type"],
        title=m["title"],
        culprit=m["culprit"],
        level=m["level"],
        status=m["status"],
        count=int(m["count"]),
        first_seen=float(m["first_seen"]),
        last_seen=float(m["last_seen"]),
        resolved_at=m["resolved_at"],
        regressed_at=m["regressed_at"],
    )
