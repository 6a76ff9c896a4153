"""The analytics the API, the dashboard and the CLI show: costs, insights and SLO status,
computed from the stores and the metric history for a period ending ``now``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from codequal.analysis.costs import PricingTable
from codequal.analytics.costs import cost_report
from codequal.analytics.insights import insights_report
from codequal.analytics.slo import WINDOWS, load_spec, status_from_ratios, window_seconds
from codequal.analytics.store import AnalyticsQueries
from codequal.storage.db import Database
from codequal.tsdb.promql import Engine, PromQLError, Scalar, Vector
from codequal.tsdb.promql.limits import QueryLimits


def compute_costs(
    db: Database,
    period: float,
    now: float,
    *,
    pricing: PricingTable,
    daily_budget: float | None,
    analysis_threshold: float | None,
) -> dict[str, Any]:
    """Spend over the ``period`` seconds before ``now``, by component, mode, model, ..."""
    totals = AnalyticsQueries(db).cost_totals(now - period, now, analysis_threshold)
    return cost_report(
        totals,
        start=now - period,
        end=now,
        daily_budget=daily_budget,
        analysis_threshold=analysis_threshold,
        pricing=pricing,
    )


def compute_insights(db: Database, period: float, now: float) -> dict[str, Any]:
    queries = AnalyticsQueries(db)
    return insights_report(
        queries.insight_totals(now - period, now),
        queries.span_facts(now - period, now),
        start=now - period,
        end=now,
    )


def compute_slo(
    source: Any, now: float, window: str | None = None, limits: QueryLimits | None = None
) -> list[dict[str, Any]]:
    """Each shipped SLO's status from the metric history (``source`` is a SeriesSource);
    ``window`` replaces the SLOs' compliance period; ``limits`` bound each query."""
    engine = Engine(source, limits=limits)
    t_ms = round(now * 1000)
    out = []
    for spec in load_spec():
        slo = spec if window is None else dataclasses.replace(spec, window=window)
        # The generated rules' ratio: no 5xx series at all is a ratio of 0, not "no data".
        ratios = {w: _scalar(engine, slo.error_ratio(w), t_ms) for w in WINDOWS}
        period = slo.window
        period_ratio = _scalar(engine, slo.error_ratio(period), t_ms)
        per_second = _scalar(engine, slo.total(period), t_ms)
        events = None if per_second is None else per_second * window_seconds(period)
        out.append(status_from_ratios(slo, ratios, period_ratio, events))
    return out


def _scalar(engine: Engine, query: str, t_ms: int) -> float | None:
    """The single value of an aggregated query; None when there is no data (or it is NaN)."""
    try:
        result = engine.instant(query, t_ms)
    except PromQLError:
        return None
    if isinstance(result, Scalar):
        value = float(result.value)
    elif isinstance(result, Vector) and len(result) > 0:
        value = float(result[0].value)
    else:
        return None
    return None if math.isnan(value) else value
