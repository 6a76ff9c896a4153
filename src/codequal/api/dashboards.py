"""The two dashboard answers (public and authenticated), cached, and the lane that serves hits.

Dashboards poll every few seconds, so nearly every request under load asks for an answer
computed moments ago. Each answer is computed at most once per ``CACHE_SECONDS`` by one
thread, encoded once, and served as bytes. :class:`CachedAnswers` recognises those hits before
routing, for the telemetry middleware to send: FastAPI's route matching, dependency solving
and response classes cost more than the answer itself. Anything but a plain hit goes on to the
routes in ``monitoring.py``, which compute, authenticate and refuse as any other endpoint does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool

from codequal.analytics.dashboard_store import (
    RANGES,
    DashboardQueries,
    aligned_window,
    disk_status,
    p95_by_mode,
    series,
    window_summary,
)
from codequal.analytics.reports import compute_slo
from codequal.api.middleware import Shortcut
from codequal.tsdb.service import query_limits
from codequal.vocabulary import iso_timestamp

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from codequal.api.auth import Authenticator
    from codequal.runtime.process import Runtime

CACHE_SECONDS = 5.0  # dashboards refresh every 10 s (at least 2 s); a few seconds is fresh
SLO_CACHE_SECONDS = 30.0  # 30-day SLO figures move slowly; /api/monitoring/slo is never cached
PUBLIC_PATH = "/api/monitoring/public/dashboard"
PRIVATE_PATH = "/api/monitoring/dashboard"
_PATHS = frozenset({PUBLIC_PATH, PRIVATE_PATH})
READ_SCOPE = "monitoring:read"
_JSON = (b"content-type", b"application/json")
# The query strings a plain dashboard request carries; any other goes to the route.
_RANGES = {b"": "1h"} | {f"range={r}".encode(): r for r in RANGES}


class TTLCache:
    """A value per key recomputed at most once per ``ttl`` seconds, by one thread at a time.

    While one request recomputes an expired value the others get the previous one, so a burst
    of dashboard clients costs one computation, not one each (which, under load, never ends).
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._computing: dict[str, threading.Lock] = {}
        self._values: dict[str, tuple[float, Any]] = {}

    def servable(self, key: str) -> Any | None:
        """The cached value if it is fresh, or stale while another thread refreshes it; None
        when the caller must compute (or wait for) it. Never blocks: for the event loop."""
        hit = self._values.get(key)
        if hit is None:
            return None
        if time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        gate = self._computing.get(key)
        return hit[1] if gate is not None and gate.locked() else None

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


class Dashboards:
    """Computes, caches and encodes the public and the authenticated dashboard answers."""

    def __init__(
        self, state: Runtime, health: Callable[[], dict[str, Any]], ttl: float = CACHE_SECONDS
    ) -> None:
        self._state = state
        self._health = health
        self._answers = TTLCache(ttl)  # encoded bodies
        self._parts = TTLCache(ttl)  # the public part, shared by both answers
        self._slos = TTLCache(SLO_CACHE_SECONDS)
        self._queries = DashboardQueries(state.db)

    def servable(self, private: bool, range_: str) -> bytes | None:
        """The encoded answer if it can be served now without computing (see TTLCache)."""
        found: bytes | None = self._answers.servable(_key(private, range_))
        return found

    async def answer(self, private: bool, range_: str) -> bytes:
        """The encoded answer; a miss is computed in a worker thread (database reads)."""
        key = _key(private, range_)
        body: bytes | None = self._answers.servable(key)
        if body is not None:
            return body
        compute = self._private if private else self._public
        found: bytes = await run_in_threadpool(
            self._answers.get, key, lambda: _encode(compute(range_))
        )
        return found

    def _public(self, range_: str) -> dict[str, Any]:
        found: dict[str, Any] = self._parts.get(
            range_, lambda: _public(self._state, self._queries, self._health, range_)
        )
        return found

    def _private(self, range_: str) -> dict[str, Any]:
        # Recomputing holds the GIL that every other request waits on: the private dashboard
        # reuses the public part instead of computing it again, and the 30-day SLO figures
        # (the costliest part) are refreshed less often than the rest.
        long_running = self._state.settings.long_running_seconds
        private = _private(self._state, self._queries, long_running)
        return self._public(range_) | private | {"slos": self._slo()}

    def _slo(self) -> list[dict[str, Any]]:
        store = self._state.alerting.history.store
        limits = query_limits(self._state.settings)
        found: list[dict[str, Any]] = self._slos.get(
            "slos", lambda: compute_slo(store, time.time(), limits=limits)
        )
        return found


class CachedAnswers:
    """Recognises, before routing, the dashboard polls whose answer is in the cache.

    A hit is an untraced shortcut for ``TelemetryMiddleware``. It recognises only what
    the route would answer the same way: the public answer while the public dashboard is on;
    the authenticated one for a JWT that verifies and holds ``monitoring:read``, sent from an
    address not over the failure limit. Anything else (a miss, another query string, no or a
    bad credential, a service key) goes on to the route, which answers, refuses and counts
    failures as usual.
    """

    def __init__(self, dashboards: Dashboards, auth: Authenticator, state: Runtime) -> None:
        self._dashboards = dashboards
        self._auth = auth
        self._state = state

    def __call__(self, scope: Scope) -> Shortcut | None:
        """The shortcut that sends the cached answer; None for anything else."""
        path = scope["path"]
        if path not in _PATHS or scope["method"] != "GET":
            return None
        range_ = _RANGES.get(scope["query_string"])
        if range_ is None:
            return None
        private = path == PRIVATE_PATH
        if private:
            if self._auth.quiet_principal(scope, READ_SCOPE) is None:
                return None
        elif not self._state.settings.public_dashboard:
            return None
        body = self._dashboards.servable(private, range_)
        if body is None:
            return None

        async def answer(_scope: Scope, _receive: Receive, send: Send) -> None:
            # The headers Starlette's Response sends, in its order.
            length = (b"content-length", str(len(body)).encode())
            await send({"type": "http.response.start", "status": 200, "headers": [length, _JSON]})
            await send({"type": "http.response.body", "body": body})

        return Shortcut(path, answer, traced=False)


def _key(private: bool, range_: str) -> str:
    return f"{'private' if private else 'public'}:{range_}"


def _encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)


def _public(
    state: Runtime, queries: DashboardQueries, health: Callable[[], dict[str, Any]], range_: str
) -> dict[str, Any]:
    """Aggregates only: no repository, user, error text or log line may appear here."""
    now = time.time()
    span = RANGES[range_]
    start, end = aligned_window(now, span)
    rows = queries.finished_since(min(start, now - 86_400.0))
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
            "availableBytes": disk.free if disk else None,
            "totalBytes": disk.total if disk else None,
            "available": checks["checks"]["deepWiki"]["status"] == "ok",
        },
        "activeAnalyses": queries.count_active(),
        "analyses": {"lastHour": window_summary(hour), "lastDay": window_summary(rows)},
        "p95DurationByMode": p95_by_mode(rows),
        "series": series([r for r in rows if r.finished_at >= start], start, end),
        # Names and severities only: the badge shows the worst firing alert to everyone.
        "alerts": [
            {"alertname": a["alertname"], "severity": a["severity"], "muted": bool(a["mutedBy"])}
            for a in _firing(state)
        ],
    }


def _disk(state: Runtime) -> Any:
    """The workspace volume's usage; None when it cannot be read (the dashboard still loads)."""
    if state.started is None:
        return None
    try:
        return state.started.analysis.deepwiki.disk()
    except OSError:
        return None


def _private(state: Runtime, queries: DashboardQueries, long_running: float) -> dict[str, Any]:
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
    failures = [_ended(f) for f in queries.recent_failures()]
    rejected = [_ended(f) for f in queries.recent_failures(status="rejected")]
    partial = [_ended(f) for f in queries.recent_failures(status="partial")]
    store = state.started.telemetry.error_store if state.started is not None else None
    top = store.list_issues(status="unresolved", limit=10, order="count") if store else []
    return {
        "activeAnalysesDetail": active,
        "recentFailures": failures,
        "recentRejected": rejected,
        "recentPartial": partial,
        "topErrors": [i.to_dict() for i in top],
        "firingAlerts": _firing(state),
    }


def _ended(row: dict[str, Any]) -> dict[str, Any]:
    """One failed, rejected or partial analysis; a partial one with what it did not read."""
    summary = row["summary"] or {}
    coverage = summary.get("coverage") or {}
    return {
        "id": row["id"],
        "repositoryUrl": row["repository_url"],
        "mode": row["mode"],
        "status": row["status"],
        "errorType": row["error_type"],
        "errorMessage": row["error_message"],
        "partialReasons": summary.get("partialReasons") or [],
        "coverage": {
            "filesChanged": coverage.get("filesChanged"),
            "filesAnalysed": coverage.get("filesAnalysed"),
            "filesSkipped": len({s["file"] for s in coverage.get("skipped", [])}),
        },
        "finishedAt": iso_timestamp(row["finished_at"]),
        "traceId": row["trace_id"],
    }


def _firing(state: Runtime) -> list[dict[str, Any]]:
    """Firing alerts, most severe first, with the runbook each links to."""
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
