"""``/api/monitoring/costs`` and ``/api/monitoring/insights``."""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from codequal.analytics.reports import compute_insights, compute_slo
from codequal.analytics.store import parse_period
from codequal.api.errors import FastJSONResponse, error_response
from codequal.runtime.process import Runtime
from codequal.runtime.wiring import compute_costs_for
from codequal.tsdb.service import query_limits


def analytics_router(state: Runtime, require: Callable[[str], Any]) -> APIRouter:
    router = APIRouter(prefix="/api/monitoring", tags=["analytics"])
    reader = Annotated[Any, Depends(require("monitoring:read"))]

    @router.get("/costs", summary="Spend by component, mode, provider, model, agent, repository")
    async def costs(_: reader, period: str = "7d") -> Any:
        try:
            seconds = parse_period(period)
        except ValueError as exc:
            return error_response(400, "invalid period", str(exc))
        body = await run_in_threadpool(
            compute_costs_for, state.settings, state.db, seconds, time.time()
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
        limits = query_limits(state.settings)
        store = state.alerting.history.store
        body = await run_in_threadpool(compute_slo, store, time.time(), None, limits)
        return FastJSONResponse({"slos": body})

    return router
