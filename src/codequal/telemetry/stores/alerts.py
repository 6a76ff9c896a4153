"""Alert events recorded by the telemetry core (critical log entries) for the alerting part."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from codequal.storage.db import Database
from codequal.storage.schema import alert_events

if TYPE_CHECKING:
    from codequal.telemetry.logging import LogEntry


class AlertEventStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record_log_entries(self, entries: Sequence[LogEntry]) -> None:
        rows = [
            {
                "ts": e.timestamp,
                "source": "log",
                "name": e.action[:200],
                "severity": "critical",
                "trace_id": e.trace_id,
                "payload": e.to_dict(),
            }
            for e in entries
        ]
        if rows:
            with self._db.engine.begin() as conn:
                conn.execute(alert_events.insert(), rows)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        stmt = sa.select(alert_events).order_by(alert_events.c.id.desc()).limit(limit)
        with self._db.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]
