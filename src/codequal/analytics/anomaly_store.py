"""Stored anomalies: one row per detector window, and whether it has been routed as an alert.

The scanner re-judges the whole recent history on every run, so a window is found again and
again; ``(detector, series, start)`` identifies it and the row is updated in place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa

from codequal.analytics.anomaly import Anomaly
from codequal.storage.db import Database
from codequal.storage.schema import anomalies
from codequal.vocabulary import iso_timestamp


class Found(NamedTuple):
    """A detector's window over one named series (``failure_ratio``, ``throughput``, ...)."""

    series: str
    anomaly: Anomaly


class StoredAnomaly(NamedTuple):
    id: int
    detector: str
    series: str
    start: float
    status: str
    alert_status: str | None
    record: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The API shape: the detector's record plus its id, series and alert state."""
        return {"id": self.id, "series": self.series, "alert": self.alert_status, **self.record}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class AnomalyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(self, found: Iterable[Found], now: float) -> None:
        """Insert new windows, refresh known ones (end, peak, status move as data arrives)."""
        t = anomalies.c
        with self._db.engine.begin() as conn:
            for series, a in found:
                values = {
                    "end": a.end,
                    "status": a.status,
                    "score": _finite(a.score),
                    "explanation": a.explanation,
                    "record": a.to_json(),
                    "updated_at": now,
                }
                key = (t.detector == a.detector) & (t.series == series) & (t.start == a.start)
                if not conn.execute(anomalies.update().where(key).values(values)).rowcount:
                    row = {"detector": a.detector, "series": series, "start": a.start}
                    conn.execute(anomalies.insert(), {**row, **values, "first_seen": now})

    def close_missing(self, seen: set[tuple[str, str, float]], since: float, now: float) -> None:
        """Open windows in the scanned range that the last scan no longer reports have ended."""
        for row in self.query(since=since, status="open"):
            if (row.detector, row.series, row.start) not in seen:
                record = {**row.record, "status": "closed", "end": iso_timestamp(now)}
                self._update(row.id, status="closed", record=record, updated_at=now)

    def set_alert_status(self, row_id: int, status: str, now: float) -> None:
        self._update(row_id, alert_status=status, updated_at=now)

    def _update(self, row_id: int, **values: Any) -> None:
        with self._db.engine.begin() as conn:
            conn.execute(anomalies.update().where(anomalies.c.id == row_id).values(values))

    def query(
        self,
        *,
        since: float | None = None,
        detector: str | None = None,
        status: str | None = None,
        to_route: bool = False,
    ) -> list[StoredAnomaly]:
        """Newest first. ``to_route``: open and not yet firing, or firing and no longer open."""
        t = anomalies.c
        query = sa.select(
            t.id, t.detector, t.series, t.start, t.status, t.alert_status, t.record
        ).order_by(t.start.desc(), t.id.desc())
        if since is not None:
            query = query.where(t.end >= since)
        if detector:
            query = query.where(t.detector == detector)
        if status:
            query = query.where(t.status == status)
        if to_route:
            firing = t.alert_status == "firing"
            query = query.where(
                ((t.status == "open") & (~firing | t.alert_status.is_(None)))
                | ((t.status != "open") & firing)
            )
        with self._db.engine.connect() as conn:
            return [StoredAnomaly(*row) for row in conn.execute(query)]
