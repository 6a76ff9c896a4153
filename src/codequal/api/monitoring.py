"""``/api/monitoring``: dashboards, logs, error issues and traces."""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.responses import Response

from codequal.api.dashboards import Dashboards
from codequal.api.errors import FastJSONResponse, error_response
from codequal.api.params import MAX_OFFSET, MAX_TEXT, Cursor, Epoch, RowId, Text
from codequal.runtime.process import Runtime
from codequal.telemetry.stores.logs import LogQuery
from codequal.vocabulary import Level, iso_timestamp

Guard = Callable[[str], Any]


class StatusChange(BaseModel):
    status: Literal["unresolved", "resolved", "ignored"]


def monitoring_router(state: Runtime, require: Guard, dashboards: Dashboards) -> APIRouter:
    router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])
    reader = Annotated[Any, Depends(require("monitoring:read"))]
    admin = Annotated[Any, Depends(require("monitoring:admin"))]

    async def serve(private: bool, range_: str) -> Response:
        # DashboardLane answers most of these before routing; what reaches here is a miss (or
        # a request the lane leaves to the route: a first token, a service key, a refusal).
        body = await dashboards.answer(private, range_)
        return Response(body, media_type="application/json")

    @router.get(
        "/public/dashboard", summary="Aggregates only, no token (CODEQUAL_PUBLIC_DASHBOARD)"
    )
    async def public_dashboard(range: Literal["1h", "6h", "24h"] = "1h") -> Any:
        if not state.settings.public_dashboard:
            return error_response(404, "not found", "the public dashboard is turned off")
        return await serve(False, range)

    @router.get("/dashboard", summary="Everything on the dashboard, including per-analysis detail")
    async def dashboard(_: reader, range: Literal["1h", "6h", "24h"] = "1h") -> Any:
        return await serve(True, range)

    @router.get("/logs", summary="Log entries, newest first, with filters and a cursor")
    def logs(  # FastAPI passes query parameters by name  # noqa: PLR0917
        _: reader,
        level: Level | None = None,
        service: Text = None,
        action: Text = None,
        trace_id: Annotated[str | None, Query(alias="traceId", max_length=MAX_TEXT)] = None,
        repository: Annotated[str | None, Query(alias="repositoryUrl", max_length=1000)] = None,
        since: Epoch = None,
        until: Epoch = None,
        q: Text = None,
        cursor: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        telemetry = state.started.telemetry if state.started else None
        if telemetry is None or telemetry.log_store is None:
            return error_response(503, "not ready", "telemetry is starting")
        rows = telemetry.log_store.query(
            LogQuery(level, service, action, trace_id, repository, since, until, q, cursor, limit)
        )
        items = [_log_item(r) for r in rows]
        next_cursor = rows[-1]["id"] if len(rows) == limit else None
        return FastJSONResponse({"items": items, "nextCursor": next_cursor})

    @router.get("/errors", summary="Error issues (grouped exceptions)")
    def errors(
        _: reader,
        status: Literal["unresolved", "resolved", "ignored"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Any:
        store = _error_store(state)
        if store is None:
            return error_response(503, "not ready", "telemetry is starting")
        issues = store.list_issues(status=status, limit=limit, offset=offset)
        return FastJSONResponse({"items": [i.to_dict() for i in issues]})

    @router.get("/errors/{issue_id}", summary="One issue with its latest (scrubbed) event")
    def error(issue_id: RowId, _: reader) -> Any:
        store = _error_store(state)
        issue = store.get_issue(issue_id) if store is not None else None
        if store is None or issue is None:
            return error_response(404, "issue not found", issue_id)
        sample = store.latest_event(issue_id)
        body = issue.to_dict() | {"sampleEvent": sample.to_dict() if sample else None}
        return FastJSONResponse(body)

    @router.patch("/errors/{issue_id}", summary="Resolve, ignore or reopen (monitoring:admin)")
    def change_error(issue_id: RowId, change: StatusChange, _: admin) -> Any:
        store = _error_store(state)
        issue = store.set_status(issue_id, change.status, time.time()) if store else None
        if issue is None:
            return error_response(404, "issue not found", issue_id)
        return FastJSONResponse(issue.to_dict())

    @router.get("/traces/{trace_id}", summary="A trace as a span tree with timings")
    def trace(trace_id: str, _: reader) -> Any:
        return _trace(state, trace_id)

    @router.get("/analyses/{analysis_id}/trace", summary="The trace of one analysis")
    def analysis_trace(analysis_id: str, _: reader) -> Any:
        record = state.started.analysis.store.get(analysis_id) if state.started else None
        if record is None or not record.trace_id:
            return error_response(404, "analysis or its trace not found", analysis_id)
        return _trace(state, record.trace_id)

    return router


def _error_store(state: Runtime) -> Any:
    return state.started.telemetry.error_store if state.started is not None else None


def _trace(state: Runtime, trace_id: str) -> Any:
    store = state.started.telemetry.span_store if state.started is not None else None
    tree = store.tree(trace_id) if store is not None else []
    if not tree:
        return error_response(404, "trace not found", trace_id)
    return FastJSONResponse({"traceId": trace_id, "spans": tree})


def _log_item(row: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row["id"],
        "timestamp": iso_timestamp(row["ts"]),
        "level": row["level"],
        "service": row["service"],
        "traceId": row["trace_id"],
        "action": row["action"],
    }
    for key, column in (
        ("userId", "user_id"),
        ("repositoryUrl", "repository_url"),
        ("duration", "duration"),
        ("error", "error"),
        ("metadata", "metadata"),
    ):
        if row[column] is not None:
            item[key] = row[column]
    return item  # fmt: skip
