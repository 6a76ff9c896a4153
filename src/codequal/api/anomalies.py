"""``/api/monitoring/anomalies``: the stored anomaly windows, newest first; ``status``
(open / closed / adapted) and ``limit`` narrow them down for the dashboard."""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from codequal.analytics.anomaly import DETECTORS
from codequal.analytics.anomaly_store import AnomalyStore
from codequal.analytics.store import parse_period
from codequal.api.errors import FastJSONResponse, error_response
from codequal.runtime.process import Runtime

STATUSES = ("open", "closed", "adapted")  # analytics.anomaly.base.Status
MAX_LIMIT = 1000


def anomalies_router(state: Runtime, require: Callable[[str], Any]) -> APIRouter:
    router = APIRouter(prefix="/api/monitoring", tags=["analytics"])
    reader = Annotated[Any, Depends(require("monitoring:read"))]
    store = AnomalyStore(state.db)

    @router.get("/anomalies", summary="Anomaly windows the detectors found, with explanations")
    async def anomalies(
        _: reader, since: str = "7d", detector: str = "", status: str = "", limit: int = 0
    ) -> Any:
        try:
            seconds = parse_period(since)
        except ValueError as exc:
            return error_response(400, "invalid since", str(exc))
        if detector and detector not in DETECTORS:
            return error_response(
                400, "unknown detector", f"detector must be one of {', '.join(DETECTORS)}"
            )
        if status and status not in STATUSES:
            return error_response(400, "invalid status", "status must be open, closed or adapted")
        if not 0 <= limit <= MAX_LIMIT:
            return error_response(
                400, "invalid limit", f"limit must be from 1 to {MAX_LIMIT} (0 or none: all)"
            )
        rows = await run_in_threadpool(
            store.query,
            since=time.time() - seconds,
            detector=detector or None,
            status=status or None,
        )
        shown = rows[:limit] if limit else rows
        return FastJSONResponse({"anomalies": [row.to_json() for row in shown]})

    return router
