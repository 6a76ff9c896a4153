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

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from codequal.storage.db import Database
from codequal.storage.models import error_events, error_issues
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


class ErrorStore:
    """Issues and events in the service database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._postgres = db.dialect == "postgresql"

    def record(self, events: Sequence[ErrorEvent]) -> None:
        """Group ``events`` into issues and store them, all in one transaction."""
        groups: dict[str, list[ErrorEvent]] = defaultdict(list)
        for event in events:
            groups[event.fingerprint].append(event)
        if not groups:
            return
        rows: list[dict[str, Any]] = []
        with self._db.engine.begin() as conn:
            # A fixed lock order: two batches sharing fingerprints cannot deadlock.
            for fp in sorted(groups):
                issue_id = conn.execute(self._upsert(fp, groups[fp])).scalar_one()
                rows.extend(_event_row(event, issue_id) for event in groups[fp])
            insert = self._insert(error_events)
            # A duplicate event id must not abort the batch (the count above still includes it).
            conn.execute(insert.on_conflict_do_nothing(index_elements=["event_id"]), rows)

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        # Both dialects spell the upsert the same way, but it is a dialect construct.
        return postgresql.insert(table) if self._postgres else sqlite.insert(table)

    def _upsert(self, fp: str, events: Sequence[ErrorEvent]) -> sa.Executable:
        first = min(events, key=lambda e: e.timestamp)
        last = max(events, key=lambda e: e.timestamp)
        stmt = self._insert(error_issues).values(
            fingerprint=fp,
            type=first.type[:200],
            title=first.title[:1000],
            culprit=(first.culprit or "")[:500] or None,
            level=first.level,
            status="unresolved",
            count=len(events),
            first_seen=first.timestamp,
            last_seen=last.timestamp,
        )
        cur, new = error_issues.c, stmt.excluded
        # Only an occurrence after the resolution reopens: a late event from before does not.
        recurs = sa.and_(
            cur.status == "resolved", new.last_seen > sa.func.coalesce(cur.resolved_at, 0.0)
        )
        return stmt.on_conflict_do_update(
            index_elements=[cur.fingerprint],
            set_={
                "count": cur.count + new.count,
                "first_seen": sa.case(
                    (new.first_seen < cur.first_seen, new.first_seen), else_=cur.first_seen
                ),
                "last_seen": sa.case(
                    (new.last_seen > cur.last_seen, new.last_seen), else_=cur.last_seen
                ),
                "status": sa.case((recurs, "unresolved"), else_=cur.status),
                "regressed_at": sa.case((recurs, new.last_seen), else_=cur.regressed_at),
            },
        ).returning(cur.id)

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


def _event_row(event: ErrorEvent, issue_id: int) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "issue_id": issue_id,
        "ts": event.timestamp,
        "trace_id": event.trace_id[:32] if event.trace_id else None,
        "payload": event.to_dict(),
    }


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
