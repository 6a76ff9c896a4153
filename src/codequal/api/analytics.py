"""``/api/monitoring/costs`` and ``/api/monitoring/insights``."""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from codequal.analysis.costs import DEFAULT_PRICING, PricingTable
from codequal.analytics.costs import cost_report
from codequal.analytics.insights import insights_report
from codequal.analytics.slo import WINDOWS, load_spec, status_from_ratios, window_seconds
from codequal.api.errors import FastJSONResponse, error_response
from codequal.api.state import AppState
from codequal.config import Settings
from codequal.storage.analytics_queries import AnalyticsQueries, parse_period
from codequal.storage.db import Database
from codequal.tsdb.promql import Engine, PromQLError, Scalar, Vector
from codequal.tsdb.promql.limits import QueryLimits
from codequal.tsdb.service import query_limits


def compute_costs(db: Database, settings: Settings, period: float, now: float) -> dict[str, Any]:
    pricing = PricingTable.load(settings.pricing_file or DEFAULT_PRICING)
    totals = AnalyticsQueries(db).cost_totals(now - period, now, settings.analysis_cost_alert)
    return cost_report(
        totals,
        start=now - period,
        end=now,
        daily_budget=settings.daily_budget,
        analysis_threshold=settings.analysis_cost_alert,
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


def analytics_router(state: AppState, require: Callable[[str], Any]) -> APIRouter:
    router = APIRouter(prefix="/api/monitoring", tags=["analytics"])
    reader = Annotated[Any, Depends(require("monitoring:read"))]

    @router.get("/costs", summary="Spend by component, mode, provider, model, agent, repository")
    async def costs(_: reader, period: str = "7d") -> Any:
        try:
            seconds = parse_period(period)
        except ValueError as exc:
            return error_response(400, "invalid period", str(exc))
        body = await run_in_threadpool(
            compute_costs, state.db, state.settings, seconds, time.time()
        )
        return FastJSONResponse(body)

    @router.get("/insights", summary="Slowest agents, bottlenecks, cache, clone and queue times")
    async def insights(_: reader, period: str = "7d") -> Any:
        try:
            seconds = parse_period(period)
        except ValueError as exc:
            return error_response(400, "invalid period", str(exc))
        body = await run_in_threadpool(compute_insights, state.db, seconds, time.time())
        return FastJSONResponse(body)

    @router.get("/slo", summary="Each SLO: SLI, error budget remaining, burn rates, exhaustion")
    async def slo(_: reader) -> Any:
        if state.alerting is None:
            return error_response(503, "not ready", "the metric history is starting")
        limits = query_limits(state.settings)
        body = await run_in_threadpool(
            compute_slo, state.alerting.history.store, time.time(), None, limits
        )
        return FastJSONResponse({"slos": body})

    return router


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
        ratios = {
            w: _scalar(engine, f"({slo.errors(w)}) / ({slo.total(w)})", t_ms) for w in WINDOWS
        }
        period = slo.window
        period_ratio = _scalar(engine, f"({slo.errors(period)}) / ({slo.total(period)})", t_ms)
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
