"""``/api/monitoring``: dashboards, logs, error issues and traces."""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from codequal.api.analytics import compute_slo
from codequal.api.errors import FastJSONResponse, error_response
from codequal.api.state import AppState
from codequal.storage.dashboard import (
    RANGES,
    DashboardQueries,
    disk_status,
    p95_by_mode,
    series,
    window_summary,
)
from codequal.storage.logs import LogQuery
from codequal.telemetry.logging import iso_timestamp

Guard = Callable[[str], Any]
CACHE_SECONDS = 5.0  # dashboards refresh every 10 s (at least 2 s); a few seconds is fresh
SLO_CACHE_SECONDS = 30.0  # 30-day SLO figures move slowly; /api/monitoring/slo is never cached


class _TTLCache:
    """A value per key recomputed at most once per ``ttl`` seconds, by one thread at a time.

    While one request recomputes an expired value the others get the previous one, so a burst
    of dashboard clients costs one computation, not one each (which, under load, never ends).
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._computing: dict[str, threading.Lock] = {}
        self._values: dict[str, tuple[float, Any]] = {}

    def fresh(self, key: str) -> Any | None:
        """The cached value if it is still fresh, without blocking (for the event loop)."""
        hit = self._values.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        return None

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._values.get(key)
            gate = self._computing.setdefault(key, threading.Lock())
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        if hit is not None and not gate.acquire(blocking=False):
            return hit[1]  # someone is refreshing it: the previous value is fresh enough
        if hit is None:
            gate.acquire()
        try:
            with self._lock:
                again = self._values.get(key)
            if again is not None and time.monotonic() - again[0] < self._ttl:
                return again[1]
            value = compute()
            with self._lock:
                self._values[key] = (time.monotonic(), value)
            return value
        finally:
            gate.release()


class StatusChange(BaseModel):
    status: Literal["unresolved", "resolved", "ignored"]


def monitoring_router(
    state: AppState, require: Guard, health: Callable[[], dict[str, Any]]
) -> APIRouter:
    router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])
    reader = Annotated[Any, Depends(require("monitoring:read"))]
    admin = Annotated[Any, Depends(require("monitoring:admin"))]
    cache = _TTLCache(CACHE_SECONDS)  # encoded answers
    parts = _TTLCache(CACHE_SECONDS)  # the public part, shared by both dashboards
    slo_cache = _TTLCache(SLO_CACHE_SECONDS)
    queries = DashboardQueries(state.db)
    long_running = state.settings.long_running_seconds

    def public(range_: str) -> dict[str, Any]:
        found: dict[str, Any] = parts.get(range_, lambda: _public(state, queries, health, range_))
        return found

    def slos() -> list[dict[str, Any]]:
        if state.alerting is None:
            return []
        store = state.alerting.history.store
        found: list[dict[str, Any]] = slo_cache.get("slos", lambda: compute_slo(store, time.time()))
        return found

    def private(range_: str) -> dict[str, Any]:
        # Recomputing holds the GIL that every other request waits on: the private dashboard
        # reuses the public part instead of computing it again, and the 30-day SLO figures
        # (the costliest part) are refreshed less often than the rest.
        return public(range_) | _private(state, queries, long_running) | {"slos": slos()}

    async def serve(key: str, compute: Callable[[], dict[str, Any]]) -> Response:
        # Cache hits (nearly every request under load) are answered on the event loop with
        # bytes already encoded; only a miss goes to a worker thread to query the database.
        body = cache.fresh(key)
        if body is None:
            body = await run_in_threadpool(cache.get, key, lambda: _encode(compute()))
        return Response(body, media_type="application/json")

    @router.get(
        "/public/dashboard", summary="Aggregates only, no token (CODEQUAL_PUBLIC_DASHBOARD)"
    )
    async def public_dashboard(range: Literal["1h", "6h", "24h"] = "1h") -> Any:
        if not state.settings.public_dashboard:
            return error_response(404, "not found", "the public dashboard is turned off")
        return await serve(f"public:{range}", lambda: public(range))

    @router.get("/dashboard", summary="Everything on the dashboard, including per-analysis detail")
    async def dashboard(_: reader, range: Literal["1h", "6h", "24h"] = "1h") -> Any:
        return await serve(f"private:{range}", lambda: private(range))

    @router.get("/logs", summary="Log entries, newest first, with filters and a cursor")
    def logs(  # FastAPI passes query parameters by name  # noqa: PLR0917
        _: reader,
        level: Literal["debug", "info", "warn", "error", "critical"] | None = None,
        service: str | None = None,
        action: str | None = None,
        trace_id: Annotated[str | None, Query(alias="traceId")] = None,
        repository: Annotated[str | None, Query(alias="repositoryUrl")] = None,
        since: float | None = None,
        until: float | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        cursor: int | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        telemetry = state.telemetry
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
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Any:
        store = _error_store(state)
        if store is None:
            return error_response(503, "not ready", "telemetry is starting")
        issues = store.list_issues(status=status, limit=limit, offset=offset)
        return FastJSONResponse({"items": [i.to_dict() for i in issues]})

    @router.get("/errors/{issue_id}", summary="One issue with its latest (scrubbed) event")
    def error(issue_id: int, _: reader) -> Any:
        store = _error_store(state)
        issue = store.get_issue(issue_id) if store is not None else None
        if store is None or issue is None:
            return error_response(404, "issue not found", issue_id)
        sample = store.latest_event(issue_id)
        body = issue.to_dict() | {"sampleEvent": sample.to_dict() if sample else None}
        return FastJSONResponse(body)

    @router.patch("/errors/{issue_id}", summary="Resolve, ignore or reopen (monitoring:admin)")
    def change_error(issue_id: int, change: StatusChange, _: admin) -> Any:
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
        record = state.analysis.store.get(analysis_id) if state.analysis else None
        if record is None or not record.trace_id:
            return error_response(404, "analysis or its trace not found", analysis_id)
        return _trace(state, record.trace_id)

    return router


def _encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)


def _error_store(state: AppState) -> Any:
    return state.telemetry.error_store if state.telemetry is not None else None


def _trace(state: AppState, trace_id: str) -> Any:
    store = state.telemetry.span_store if state.telemetry is not None else None
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


def _public(
    state: AppState, queries: DashboardQueries, health: Callable[[], dict[str, Any]], range_: str
) -> dict[str, Any]:
    """Aggregates only: no repository, user, error text or log line may appear here."""
    now = time.time()
    span = RANGES[range_]
    rows = queries.finished_since(now - max(span, 86_400.0))
    hour = [r for r in rows if r.finished_at >= now - 3600]
    disk = _disk(state)
    checks = health()
    return {
        "status": checks["status"],
        "generatedAt": iso_timestamp(now),
        "deepwiki": {
            "diskUsageRatio": disk.ratio if disk else None,
            "diskStatus": disk_status(disk.ratio) if disk else "unknown",
            "usedBytes": disk.used if disk else None,
            "totalBytes": disk.total if disk else None,
            "available": checks["checks"]["deepWiki"]["status"] == "ok",
        },
        "activeAnalyses": queries.count_active(),
        "analyses": {"lastHour": window_summary(hour), "lastDay": window_summary(rows)},
        "p95DurationByMode": p95_by_mode(rows),
        "series": series([r for r in rows if r.finished_at >= now - span], now - span, now),
    }


def _disk(state: AppState) -> Any:
    """The workspace volume's usage; None when it cannot be read (the dashboard still loads)."""
    if state.analysis is None:
        return None
    try:
        return state.analysis.deepwiki.disk()
    except OSError:
        return None


def _private(state: AppState, queries: DashboardQueries, long_running: float) -> dict[str, Any]:
    now = time.time()
    active = [
        {
            "id": a["id"],
            "repositoryUrl": a["repository_url"],
            "mode": a["mode"] or a["requested_mode"],
            "status": a["status"],
            "step": a["step"],
            "elapsedSeconds": now - (a["started_at"] or a["created_at"]),
            "longRunning": now - (a["started_at"] or a["created_at"]) > long_running,
            "traceId": a["trace_id"],
        }
        for a in queries.active()
    ]
    failures = [
        {
            "id": f["id"],
            "repositoryUrl": f["repository_url"],
            "mode": f["mode"],
            "errorType": f["error_type"],
            "errorMessage": f["error_message"],
            "finishedAt": iso_timestamp(f["finished_at"]),
            "traceId": f["trace_id"],
        }
        for f in queries.recent_failures()
    ]
    store = _error_store(state)
    top = store.list_issues(status="unresolved", limit=10, order="count") if store else []
    return {
        "activeAnalysesDetail": active,
        "recentFailures": failures,
        "topErrors": [i.to_dict() for i in top],
        "firingAlerts": _firing(state),
    }


def _firing(state: AppState) -> list[dict[str, Any]]:
    """Firing alerts, most severe first, with the runbook each links to."""
    if state.alerting is None:
        return []
    order = {"emergency": 0, "critical": 1, "warning": 2, "ticket": 3, "info": 4}
    alerts = [(a, muted) for a, muted in state.alerting.notifier.active_alerts()
              if a.status == "firing"]  # fmt: skip
    alerts.sort(key=lambda item: (order.get(item[0].severity, 5), item[0].name))
    return [
        {
            "alertname": a.name,
            "severity": a.severity,
            "summary": a.annotations.get("summary", ""),
            "firedAt": iso_timestamp(a.fired_at or a.active_at),
            "runbookUrl": a.annotations.get("runbook_url"),
            "mutedBy": muted or None,
        }
        for a, muted in alerts
    ]
