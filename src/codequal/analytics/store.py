"""Reads for cost analytics and insights: a period's totals, analyses and span trees.

The service reads totals (``cost_totals``, ``insight_totals``: aggregated by the database,
see ``analytics_totals``); the decoded records (``cost_records``, ``analysis_facts``) give
the same reports and are what the totals are tested against.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from codequal.analytics import totals_store as analytics_totals
from codequal.analytics.costs import CostRecord, CostTotals
from codequal.analytics.insights import AnalysisFacts, InsightTotals, SpanFacts
from codequal.storage.db import Database
from codequal.storage.schema import analyses, analysis_stats, spans

# Span trees are read for the most recent analyses only: enough for stable shares, and
# bounded work however busy the period was.
MAX_TRACES = 2_000
_PERIOD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_period(text: str) -> float:
    """``30m``, ``24h``, ``7d``, ``2w`` → seconds; ValueError with the accepted forms."""
    match = _PERIOD.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"period {text!r} is not a duration like 30m, 24h, 7d or 2w")
    return float(match.group(1)) * _UNIT[match.group(2)]


class AnalyticsQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    def cost_totals(self, start: float, end: float, threshold: float | None) -> CostTotals:
        """The period's cost totals; ``over_threshold`` lists analyses above ``threshold``."""
        return analytics_totals.cost_totals(self._db, start, end, threshold)

    def insight_totals(self, start: float, end: float) -> InsightTotals:
        return analytics_totals.insight_totals(self._db, start, end)

    def cost_records(self, start: float, end: float) -> list[CostRecord]:
        t = analyses
        stmt = sa.select(
            t.c.id,
            t.c.finished_at,
            t.c.status,
            t.c.mode,
            t.c.requested_mode,
            t.c.repository_url,
            t.c.cost,
            t.c.timings,
            t.c.summary,
        ).where((t.c.finished_at >= start) & (t.c.finished_at < end) & t.c.cost.is_not(None))
        with self._db.engine.connect() as conn:
            return [
                CostRecord(
                    r.id,
                    r.finished_at,
                    r.status,
                    r.mode or r.requested_mode,
                    r.repository_url,
                    r.cost or {},
                    r.timings or {},
                    ((r.summary or {}).get("diff") or {}).get("autoMode"),
                )
                for r in conn.execute(stmt)
            ]

    def analysis_facts(self, start: float, end: float) -> list[AnalysisFacts]:
        t = analyses
        stmt = sa.select(
            t.c.id,
            t.c.status,
            t.c.mode,
            t.c.requested_mode,
            t.c.repository_url,
            t.c.created_at,
            t.c.started_at,
            t.c.finished_at,
            t.c.timings,
            t.c.summary,
        ).where((t.c.finished_at >= start) & (t.c.finished_at < end))
        with self._db.engine.connect() as conn:
            return [
                AnalysisFacts(
                    r.id,
                    r.status,
                    r.mode or r.requested_mode,
                    r.repository_url,
                    r.created_at,
                    r.started_at,
                    r.finished_at,
                    r.timings or {},
                    ((r.summary or {}).get("profile") or {}).get("sizeClass"),
                )
                for r in conn.execute(stmt)
            ]

    def span_facts(self, start: float, end: float) -> list[SpanFacts]:
        t = analysis_stats  # narrow and clustered by finish time: the newest are read first
        traces = (
            sa.select(t.c.trace_id)
            .where(analytics_totals.in_period(t, start, end) & t.c.trace_id.is_not(None))
            .order_by(t.c.finished_at.desc())
            .limit(MAX_TRACES)
        )
        s = spans
        stmt = sa.select(
            s.c.trace_id, s.c.span_id, s.c.parent_span_id, s.c.name, s.c.start_ts, s.c.end_ts
        ).where(s.c.trace_id.in_(traces))
        with self._db.engine.connect() as conn:
            return [SpanFacts(*row) for row in conn.execute(stmt)]
