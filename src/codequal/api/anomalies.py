"""``/api/monitoring/anomalies``: the stored anomaly windows, newest first."""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from codequal.analytics.anomaly import DETECTORS
from codequal.api.errors import FastJSONResponse, error_response
from codequal.api.state import AppState
from codequal.storage.analytics_queries import parse_period
from codequal.storage.anomaly_models import AnomalyStore


def anomalies_router(state: AppState, require: Callable[[str], Any]) -> APIRouter:
    router = APIRouter(prefix="/api/monitoring", tags=["analytics"])
    reader = Annotated[Any, Depends(require("monitoring:read"))]
    store = AnomalyStore(state.db)

    @router.get("/anomalies", summary="Anomaly windows the detectors found, with explanations")
    async def anomalies(_: reader, since: str = "7d", detector: str = "") -> Any:
        try:
            seconds = parse_period(since)
        except ValueError as exc:
            return error_response(400, "invalid since", str(exc))
        if detector and detector not in DETECTORS:
            return error_response(
                400, "unknown detector", f"detector must be one of {', '.join(DETECTORS)}"
            )
        rows = await run_in_threadpool(
            store.query, since=time.time() - seconds, detector=detector or None
        )
        return FastJSONResponse({"anomalies": [row.to_json() for row in rows]})

    return router
