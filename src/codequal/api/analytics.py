"""``/api/monitoring/costs`` and ``/api/monitoring/insights``."""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from codequal.analysis.costs import DEFAULT_PRICING, PricingTable
from codequal.analytics.costs import cost_report
from codequal.analytics.insights import insights_report
from codequal.api.errors import FastJSONResponse, error_response
from codequal.api.state import AppState
from codequal.config import Settings
from codequal.storage.analytics_queries import AnalyticsQueries, parse_period
from codequal.storage.db import Database


def compute_costs(db: Database, settings: Settings, period: float, now: float) -> dict[str, Any]:
    pricing = PricingTable.load(settings.pricing_file or DEFAULT_PRICING)
    records = AnalyticsQueries(db).cost_records(now - period, now)
    return cost_report(
        records,
        start=now - period,
        end=now,
        daily_budget=settings.daily_budget,
        analysis_threshold=settings.analysis_cost_alert,
        pricing=pricing,
    )


def compute_insights(db: Database, period: float, now: float) -> dict[str, Any]:
    queries = AnalyticsQueries(db)
    return insights_report(
        queries.analysis_facts(now - period, now),
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

    return router
