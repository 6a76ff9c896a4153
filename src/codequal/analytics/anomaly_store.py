"""Stored anomalies: one row per incident, and whether it has been routed as an alert.

The scanner re-judges the recent history on every run, so an incident is found again and
again. When the scanned window moves, a detector that starts from a different first sample
may date the same incident differently (a later detection, while the start of its history
is still learning) or judge old samples differently (its memory of the series' habits
starts later). So:

- a found incident is the stored row of the same detector and series that it overlaps in
  time. That row keeps its start (the first detection, when its alert fired) and takes the
  rest (end, peak, status, explanation) from the scan;
- an incident that matches no row is new, unless it is closed and began before the
  previous scan: samples an earlier scan had judged without finding anything there are
  history re-judged, not news; storing them would list an incident nobody saw happen.
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


def _upsert_one(
    conn: sa.Connection, series: str, a: Anomaly, now: float, judged_before: float | None
) -> int | None:
    t = anomalies.c
    same = (
        sa.select(t.id, t.start)
        .where((t.detector == a.detector) & (t.series == series))
        .where((t.start <= a.end) & (t.end >= a.start))
        .order_by(t.start)
        .limit(1)
    )
    known = conn.execute(same).first()
    record = a.to_json()
    values: dict[str, Any] = {
        "end": a.end,
        "status": a.status,
        "score": _finite(a.score),
        "explanation": a.explanation,
        "updated_at": now,
    }
    if known is not None:
        record["start"] = iso_timestamp(known.start)
        conn.execute(anomalies.update().where(t.id == known.id).values(**values, record=record))
        return int(known.id)
    if judged_before is not None and a.status != "open" and a.start <= judged_before:
        return None
    row = {"detector": a.detector, "series": series, "start": a.start, "first_seen": now}
    inserted = conn.execute(anomalies.insert().values(**row, **values, record=record))
    key = inserted.inserted_primary_key
    return int(key[0]) if key is not None else 0


class AnomalyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(
        self, found: Iterable[Found], now: float, judged_before: float | None = None
    ) -> set[int]:
        """Insert new incidents, refresh known ones; the ids of the rows found.

        ``judged_before``: when the previous scan ran (None for the first scan of this
        process); an unknown closed incident that began before it is not stored.
        """
        ids: set[int] = set()
        with self._db.engine.begin() as conn:
            for series, a in sorted(found, key=lambda f: f.anomaly.start):
                row_id = _upsert_one(conn, series, a, now, judged_before)
                if row_id is not None:
                    ids.add(row_id)
        return ids

    def close_missing(self, seen: set[int], since: float, now: float) -> None:
        """Open incidents in the scanned range that the last scan no longer reports have ended."""
        for row in self.query(since=since, status="open"):
            if row.id not in seen:
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
