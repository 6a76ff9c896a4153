"""Dashboard aggregates over the analyses table: pure maths plus the queries that feed it."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from codequal.analytics.stats import percentile
from codequal.storage.db import Database
from codequal.storage.schema import analyses

RANGES = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 86_400.0}
POINTS = 60
# DeepWiki disk thresholds from the plan: ok < 70 %, warning >= 70 %, critical >= 85 %,
# emergency >= 95 %.
DISK_LEVELS = ((0.95, "emergency"), (0.85, "critical"), (0.70, "warning"))


def disk_status(ratio: float) -> str:
    for threshold, level in DISK_LEVELS:
        if ratio >= threshold:
            return level
    return "ok"


class Finished(NamedTuple):
    """One analysis that ended: when, how, how long, in which mode.

    A tuple: the dashboard builds thousands of these every few seconds.
    """

    finished_at: float
    status: str
    mode: str
    duration: float


# Analyses that delivered a report; ``partial`` ones say what they could not read.
DELIVERED = ("completed", "partial")


def window_summary(rows: Iterable[Finished]) -> dict[str, Any]:
    """Counts by outcome, and the success rate of the service: reports delivered over
    reports delivered plus failures. A rejection (the caller's mistake) is no failure."""
    counts = Counter(r.status for r in rows)
    delivered = counts["completed"] + counts["partial"]
    attempted = delivered + counts["failed"]
    return {
        "total": sum(counts.values()),
        "completed": counts["completed"],
        "partial": counts["partial"],
        "failed": counts["failed"],
        "rejected": counts["rejected"],
        "successRate": delivered / attempted if attempted else None,
    }


def p95_by_mode(rows: Iterable[Finished]) -> dict[str, float | None]:
    by_mode: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.status in DELIVERED:
            by_mode[r.mode].append(r.duration)
    return {mode: percentile(v, 0.95) for mode, v in sorted(by_mode.items())}


def aligned_window(now: float, span: float, points: int = POINTS) -> tuple[float, float]:
    """``(start, end)`` of ``span`` seconds ending at the first bucket boundary at or after
    ``now``, boundaries being multiples of ``span / points`` since the epoch.

    Buckets aligned to the step keep their edges from one refresh to the next, so a past
    point keeps its value; aligned to ``now`` they slid, and every past value changed.
    """
    step = span / points
    end = math.ceil(now / step) * step
    return end - span, end


def series(
    rows: Sequence[Finished], start: float, end: float, points: int = POINTS
) -> dict[str, Any]:
    """Per-bucket analyses per minute, success rate and p95 duration by mode."""
    width = (end - start) / points
    buckets: list[list[Finished]] = [[] for _ in range(points)]
    for r in rows:
        index = int((r.finished_at - start) // width)
        if 0 <= index < points:
            buckets[index].append(r)
    modes = sorted({r.mode for r in rows})
    return {
        "start": start,
        "end": end,
        "step": width,
        "timestamps": [start + (i + 1) * width for i in range(points)],
        "analysesPerMinute": [len(b) / (width / 60.0) for b in buckets],
        "successRate": [window_summary(b)["successRate"] for b in buckets],
        "p95DurationByMode": {
            mode: [
                percentile(
                    [r.duration for r in b if r.mode == mode and r.status in DELIVERED], 0.95
                )
                for b in buckets
            ]
            for mode in modes
        },
    }


class DashboardQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    def finished_since(self, since: float) -> list[Finished]:
        t = analyses
        stmt = sa.select(t.c.finished_at, t.c.status, t.c.mode, t.c.requested_mode, t.c.started_at)
        # Only finished analyses have a finish time; filtering on status too would
        # lead SQLite to the status index and a scan of every analysis ever finished.
        stmt = stmt.where(t.c.finished_at >= since).order_by(t.c.finished_at)
        with self._db.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            Finished(finished, status, mode or requested, finished - (started or finished))
            for finished, status, mode, requested, started in rows
        ]

    def active(self) -> list[dict[str, Any]]:
        t = analyses
        stmt = (
            sa.select(t.c.id, t.c.repository_url, t.c.mode, t.c.requested_mode, t.c.step,
                      t.c.started_at, t.c.status, t.c.created_at, t.c.trace_id)
            .where(t.c.status.in_(("queued", "running")))
            .order_by(t.c.created_at)
            .limit(200)
        )  # fmt: skip
        with self._db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def count_active(self) -> int:
        t = analyses
        with self._db.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(t).where(t.c.status == "running")
                ).scalar_one()
            )

    def recent_failures(self, limit: int = 10, status: str = "failed") -> list[dict[str, Any]]:
        """The last analyses that ended ``status`` (failed, rejected or partial), newest first,
        with the summary that says what a partial one could not read."""
        t = analyses
        stmt = (
            sa.select(t.c.id, t.c.repository_url, t.c.mode, t.c.error_type, t.c.error_message,
                      t.c.finished_at, t.c.trace_id, t.c.status, t.c.summary)
            .where(t.c.status == status)
            .order_by(t.c.finished_at.desc())
            .limit(limit)
        )  # fmt: skip
        with self._db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]
