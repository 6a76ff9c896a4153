"""A period's cost and insight totals, aggregated by the database from ``analysis_stats``.

Sums are GROUP BYs over the period, which on SQLite is one contiguous range of the
clustering key. Each percentile reads only the two values it interpolates between, stepping
along an index ordered by the value (``_spread``), with the rank arithmetic of
``codequal.analytics.stats.percentile``, so the answers are the ones the decoded records give
(sums may differ in the last bits, being added in another order).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import ColumnElement

from codequal.analytics.costs import DAY, CostTotals, LlmUse
from codequal.analytics.insights import InsightTotals, Spread
from codequal.storage.db import Database
from codequal.storage.schema import analysis_agent_times, analysis_stats

_COMPONENTS = ("infrastructure", "deepwiki", "llm")


def in_period(table: sa.Table, start: float, end: float) -> ColumnElement[bool]:
    """The period as a range of the clustering key: one contiguous read."""
    return (table.c.finished_at >= start) & (table.c.finished_at < end)


def _walking(table: sa.Table, start: float, end: float) -> ColumnElement[bool]:
    """The period as a filter only: ``+ 0`` hides the key range from the planner.

    Offered the range, SQLite reads it and sorts; stepping along an index that is already in
    the order wanted (by value, by repository) is ten times cheaper for a long period.
    """
    shifted = table.c.finished_at + sa.literal_column("0")
    return (shifted >= start) & (shifted < end)


def _quantile(
    conn: sa.Connection, value: Any, where: ColumnElement[bool], n: int, q: float
) -> float:
    """``ordered[low] + (ordered[high] - ordered[low]) * (rank - low)``, reading two values.

    An upper quantile is read from the top down: fewer index entries to step over.
    """
    rank = q * (n - 1)
    low, high = math.floor(rank), math.ceil(rank)
    stmt = sa.select(value).where(where, value.is_not(None)).limit(2)
    if q <= 0.5:  # ordered[low], ordered[low + 1]
        found = conn.execute(stmt.order_by(value).offset(low)).scalars().all()
        at_low = list(found[: high - low + 1])
    else:  # ordered[high], ordered[high - 1]
        found = conn.execute(stmt.order_by(value.desc()).offset(n - 1 - high)).scalars().all()
        at_low = list(reversed(found[: high - low + 1]))
    if not at_low:  # rows deleted since they were counted
        return math.nan
    return float(at_low[0] + (at_low[-1] - at_low[0]) * (rank - low))


def _spread(conn: sa.Connection, value: Any, where: ColumnElement[bool], n: int) -> Spread:
    """Count, median and 95th percentile of the ``n`` non-NULL ``value``s matching ``where``."""
    if n == 0:
        return Spread(0, None, None)
    return Spread(n, _quantile(conn, value, where, n, 0.5), _quantile(conn, value, where, n, 0.95))


def _sums(conn: sa.Connection, key: Any, amount: Any, where: ColumnElement[bool]) -> dict[Any, Any]:
    rows = conn.execute(sa.select(key, sa.func.sum(amount)).where(where).group_by(key))
    return {group: total for group, total in rows}


def _daily(conn: sa.Connection, start: float, end: float) -> dict[int, float]:
    """Spend per UTC day number, one range sum per day.

    A range per day reads the period once in key order, where GROUP BY a day expression
    would sort it; and the bounds are exactly those of ``finished_at // DAY``.
    """
    t = analysis_stats
    stmt = sa.select(sa.func.sum(t.c.cost_total)).where(
        (t.c.finished_at >= sa.bindparam("lo")) & (t.c.finished_at < sa.bindparam("hi"))
    )
    out: dict[int, float] = {}
    for day in range(int(start // DAY), int(end // DAY) + 1):
        lo, hi = max(start, day * DAY), min(end, (day + 1) * DAY)
        spend = conn.execute(stmt, {"lo": lo, "hi": hi}).scalar() if lo < hi else None
        if spend is not None:
            out[day] = spend
    return out


def cost_totals(db: Database, start: float, end: float, threshold: float | None) -> CostTotals:
    """What ``cost_report`` needs for the analyses with a cost that finished in the period."""
    t = analysis_stats
    where = in_period(t, start, end) & t.c.cost_total.is_not(None)
    walk = _walking(t, start, end) & t.c.cost_total.is_not(None)
    with db.engine.connect() as conn:
        folded = _fold(_cost_groups(conn, walk))
        quick = walk & (t.c.mode == "quick") & (t.c.status == "completed")
        median = _spread(conn, t.c.cost_total, quick, folded.pop("quick")).p50
        overall = _spread(conn, t.c.cost_total, walk, folded["analyses"])
        return CostTotals(
            **folded,
            by_repository=_sums(conn, t.c.repository_url, t.c.cost_total, walk),
            by_agent=_cost_by_agent(conn, start, end),
            p50=overall.p50,
            p95=overall.p95,
            daily=_daily(conn, start, end),
            over_threshold=_over_threshold(conn, where, threshold),
            quick_median=median,
            **_movable(conn, walk, median),
        )


def _cost_groups(conn: sa.Connection, where: ColumnElement[bool]) -> Sequence[Any]:
    """Sums per (mode, status, provider, model): a few dozen rows every breakdown folds from.

    Read along the index in that order (``where`` is a walking filter), so nothing is sorted.
    """
    t = analysis_stats
    keys = (t.c.mode, t.c.status, t.c.llm_provider, t.c.llm_model)
    return conn.execute(
        sa.select(*keys, sa.func.count().label("n"), sa.func.sum(t.c.cost_total).label("total"),
                  sa.func.max(t.c.cost_total).label("top"),
                  *[sa.func.sum(t.c[f"cost_{c}"]).label(c) for c in _COMPONENTS],
                  sa.func.sum(t.c.llm_input_tokens).label("tokens_in"),
                  sa.func.sum(t.c.llm_output_tokens).label("tokens_out"))
        .where(where).group_by(*keys)
    ).all()  # fmt: skip


def _fold(groups: Sequence[Any]) -> dict[str, Any]:
    n = quick = 0
    total: float = 0  # an int 0 for no analyses, as the sum of no records was
    top: float | None = None
    by: dict[str, dict[str, float]] = {k: defaultdict(float) for k in ("mode", "provider", "model")}
    parts: dict[str, float] = defaultdict(float)
    uses: dict[str, LlmUse] = {}
    for g in groups:
        n, total, top = n + g.n, total + g.total, g.top if top is None else max(top, g.top)
        by["mode"][g.mode] += g.total
        by["provider"][g.llm_provider or "none"] += g.total
        by["model"][g.llm_model or "none"] += g.total
        for name in _COMPONENTS:
            if g._mapping[name] is not None:
                parts[name] += g._mapping[name]
        if g.llm_model is not None:
            seen = uses.get(g.llm_model, LlmUse(0, 0, 0))
            uses[g.llm_model] = LlmUse(seen.analyses + g.n, seen.input_tokens + int(g.tokens_in),
                                       seen.output_tokens + int(g.tokens_out))  # fmt: skip
        if (g.mode, g.status) == ("quick", "completed"):
            quick += g.n
    return {
        "analyses": n,
        "total": total,
        "max": top,
        "by_component": {name: parts[name] for name in _COMPONENTS if name in parts},
        "by_mode": dict(by["mode"]),
        "by_provider": dict(by["provider"]),
        "by_model": dict(by["model"]),
        "llm_uses": uses,
        "quick": quick,
    }


def _cost_by_agent(conn: sa.Connection, start: float, end: float) -> dict[str, float]:
    a = analysis_agent_times
    share = a.c.cost_infrastructure * a.c.seconds / a.c.analysis_seconds
    where = _walking(a, start, end) & a.c.cost_infrastructure.is_not(None)
    return _sums(conn, a.c.agent, share, where & (a.c.analysis_seconds > 0))


def _over_threshold(
    conn: sa.Connection, where: ColumnElement[bool], threshold: float | None
) -> list[dict[str, Any]]:
    if threshold is None:
        return []
    t = analysis_stats
    rows = conn.execute(
        sa.select(t.c.analysis_id, t.c.cost_total, t.c.mode, t.c.repository_url)
        .where(where & (t.c.cost_total > threshold))
        .order_by(t.c.finished_at)
    )
    return [{"id": i, "cost": c, "mode": m, "repositoryUrl": r} for i, c, m, r in rows]


def _movable(
    conn: sa.Connection, where: ColumnElement[bool], median: float | None
) -> dict[str, Any]:
    """Deep analyses auto would have run quick, and what they cost above the quick median."""
    t = analysis_stats
    deep = where & (t.c.mode == "deep") & (t.c.auto_mode == "quick")
    above: Any = sa.cast(sa.null(), sa.Float)
    if median is not None:
        above = sa.case((t.c.cost_total > median, t.c.cost_total - median), else_=0.0)
    count, saving = conn.execute(sa.select(sa.func.count(), sa.func.sum(above)).where(deep)).one()
    return {"movable": count, "movable_saving": 0.0 if saving is None else float(saving)}


def insight_totals(db: Database, start: float, end: float) -> InsightTotals:
    """What ``insights_report`` needs for the analyses that finished in the period."""
    t = analysis_stats
    where, walk = in_period(t, start, end), _walking(t, start, end)
    both = t.c.seconds_knowledge.is_not(None) & t.c.seconds_deepwiki.is_not(None)
    with db.engine.connect() as conn:
        n, seconds, lookups, misses, waits = conn.execute(
            sa.select(sa.func.count(), sa.func.sum(t.c.seconds_total),
                      sa.func.count(t.c.seconds_knowledge), sa.func.count(sa.case((both, 1))),
                      sa.func.count(t.c.queue_seconds)).where(where)
        ).one()  # fmt: skip
        clones = _sums(conn, t.c.size_class, sa.literal(1), walk & t.c.seconds_clone.is_not(None))
        return InsightTotals(
            analyses=n,
            analysis_seconds=seconds or 0.0,
            agents=_agent_times(conn, start, end),
            knowledge=_spread(conn, t.c.seconds_knowledge, walk, lookups),
            knowledge_misses=misses,
            clone_by_size={
                size: _spread(conn, t.c.seconds_clone, walk & (t.c.size_class == size), count)
                for size, count in clones.items()
            },
            queue_wait=_spread(conn, t.c.queue_seconds, walk, waits),
            deepwiki_runs=_sums(
                conn, t.c.repository_url, sa.literal(1), walk & t.c.seconds_deepwiki.is_not(None)
            ),
        )


def _agent_times(conn: sa.Connection, start: float, end: float) -> dict[str, tuple[Spread, float]]:
    a = analysis_agent_times
    walk = _walking(a, start, end)
    rows = conn.execute(
        sa.select(a.c.agent, sa.func.count(), sa.func.sum(a.c.seconds))
        .where(walk)
        .group_by(a.c.agent)
    ).all()
    return {
        agent: (_spread(conn, a.c.seconds, walk & (a.c.agent == agent), n), seconds)
        for agent, n, seconds in rows
    }
