"""The FastAPI application: probes, metrics, and the lifecycle that wires storage and telemetry.

Startup runs in the background so the process answers probes at once: ``/ready`` is 503 until
migrations have run and the telemetry workers have started (and again while shutting down).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from typing import Any

import redis
from fastapi import Depends, FastAPI, Request, Response
from prometheus_client.exposition import choose_encoder

from codequal import __version__
from codequal.alerting.service import AlertingService
from codequal.analysis.collector import COLLECTOR
from codequal.analysis.service import AnalysisService
from codequal.analytics.anomaly_service import AnomalyService
from codequal.api import health
from codequal.api.alerts import alerts_router
from codequal.api.analyses import analyses_router, deepwiki_router
from codequal.api.analytics import analytics_router
from codequal.api.anomalies import anomalies_router
from codequal.api.auth import Authenticator, build_authenticator
from codequal.api.dashboards import CachedAnswers, Dashboards
from codequal.api.errors import FastJSONResponse, error_response, install_error_handlers
from codequal.api.ingest import ingest_routes
from codequal.api.middleware import TelemetryMiddleware, first_shortcut
from codequal.api.monitoring import monitoring_router
from codequal.api.prom_api import prom_router
from codequal.api.runbooks import install_runbooks
from codequal.api.state import AppState
from codequal.api.web import install_web
from codequal.cluster import Leadership
from codequal.config import Settings
from codequal.storage.db import open_database
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.setup import setup_telemetry
from codequal.vocabulary import iso_timestamp

STARTUP_RETRY_SECONDS = 2.0


def create_app(
    settings: Settings, *, set_global_telemetry: bool = False, start_workers: bool = True
) -> FastAPI:
    """Build the app; nothing touches the database until the lifespan starts."""
    state = AppState(settings=settings, db=open_database(settings.resolved_database_url))
    if settings.redis_url is not None:
        state.redis = redis.Redis.from_url(
            settings.redis_url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        starter = asyncio.create_task(_start(state, stop, set_global_telemetry, start_workers))
        try:
            yield
        finally:
            state.shutting_down = True
            stop.set()
            await starter
            await asyncio.to_thread(_stop, state)

    app = FastAPI(
        title="CodeQual",
        version=__version__,
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
        # TelemetryMiddleware traces, counts and logs every request. FastAPI's own OpenTelemetry
        # (on once a global provider is set, as `codequal serve` does) would add a second trace
        # per request and two operation spans to ours: four spans stored instead of one.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.codequal = state
    install_error_handlers(app)
    auth = build_authenticator(settings, state.db)
    state.alerting = AlertingService.build(settings, state.db)
    auth.install(app)
    app.state.auth = auth
    dashboards = Dashboards(state, lambda: health_data(state))
    monitoring = monitoring_router(state, auth.require, dashboards)
    ingest, sentry = ingest_routes(state, auth)
    shortcut = first_shortcut(CachedAnswers(dashboards, auth, state), sentry)
    app.add_middleware(TelemetryMiddleware, state=state, shortcut=shortcut)
    _add_probe_routes(app, state, auth)
    app.include_router(analyses_router(state, auth.require))
    app.include_router(deepwiki_router(state, auth.require))
    app.include_router(monitoring)
    app.include_router(analytics_router(state, auth.require))
    app.include_router(prom_router(state, auth.require))
    app.include_router(
        alerts_router(
            state,
            auth.require,
            notifier=lambda: state.alerting.notifier if state.alerting else None,
            rules=lambda: state.alerting.rules_overview() if state.alerting else [],
        )
    )
    app.include_router(ingest)
    app.include_router(anomalies_router(state, auth.require))
    install_web(app)
    install_runbooks(app)
    return app


async def _start(
    state: AppState, stop: asyncio.Event, set_global: bool, start_workers: bool
) -> None:
    """Migrate, then start telemetry; retry while the database is unreachable."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(state.db.migrate)
            break
        except Exception as exc:  # noqa: BLE001 - keep serving probes and try again
            state.startup_error = f"database migration failed: {exc}"[:500]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STARTUP_RETRY_SECONDS)
    if stop.is_set():
        return
    state.telemetry = setup_telemetry(state.settings, state.db, set_global=set_global)
    service = AnalysisService.build(state.settings, state.db, state.telemetry)
    if state.alerting is not None:
        state.alerting.attach(state.telemetry)
        state.anomalies = AnomalyService(
            state.alerting.history.store, state.db, state.alerting.notifier
        )
        if start_workers:
            _campaign(state)
            state.alerting.start()
            state.anomalies.start()
    COLLECTOR.attach(service.deepwiki, state.db)
    if start_workers:
        service.start()
    state.analysis = service
    state.startup_error = None
    if set_global:
        # The server process's objects built so far live as long as it does: moving them out
        # of the collector's reach keeps full collections from walking them (they were the
        # p99 latency tail under load). Only for `codequal serve`, which owns its process.
        gc.freeze()
    state.ready.set()
    state.telemetry.logger("server").info(
        "codequal started",
        url=f"http://{state.settings.host}:{state.settings.port}",
        version=__version__,
        database=state.db.dialect,
        data_dir=str(state.settings.data_dir),
    )


def _campaign(state: AppState) -> None:
    """Run the singleton work only while this replica holds the leader lock (cluster.py)."""
    assert state.alerting is not None and state.anomalies is not None
    telemetry = state.telemetry
    log = telemetry.logger("cluster") if telemetry is not None else None

    def changed(leading: bool) -> None:
        if log is not None:
            log.info("leadership gained" if leading else "leadership lost", leader=leading)

    def failed(exc: BaseException) -> None:
        if log is not None:
            log.warn("leader election failed", error=str(exc)[:300])

    leadership = Leadership(state.db, on_error=failed)
    for service in (state.alerting, state.anomalies):
        service.set_active(False)
        leadership.subscribe(service.set_active)
    leadership.subscribe(changed)
    state.leadership = leadership
    leadership.start()


def _stop(state: AppState) -> None:
    telemetry = state.telemetry
    if state.analysis is not None:
        # Running analyses get half the budget; unfinished ones are requeued after restart.
        state.analysis.stop(state.settings.shutdown_timeout / 2)
        COLLECTOR.detach()
    if state.anomalies is not None:
        state.anomalies.stop(state.settings.shutdown_timeout / 8)
    if state.alerting is not None:
        state.alerting.stop(state.settings.shutdown_timeout / 4)
    if state.leadership is not None:
        state.leadership.stop(1.0)  # after the work stopped: another replica takes over now
    if telemetry is not None:
        telemetry.logger("server").info("codequal stopping")
        telemetry.shutdown(state.settings.shutdown_timeout / 2)
    if state.redis is not None:
        state.redis.close()
    state.db.dispose()


def health_data(state: AppState) -> dict[str, Any]:
    """Run every check now; "healthy" when no enabled check failed."""
    checks = {
        "database": health.check_database(state.db),
        "vectorDB": health.check_vector_db(state.db),
        "deepWiki": health.check_deepwiki(state.settings.resolved_deepwiki_dir),
        "redis": health.check_redis(state.redis),
    }
    healthy = all(c.status != "error" for c in checks.values())
    body: dict[str, Any] = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": iso_timestamp(time.time()),
        "version": __version__,
        "checks": {name: c.to_dict() for name, c in checks.items()},
    }
    if state.alerting is not None:
        leadership = state.leadership
        body["replica"] = {
            "instance": state.alerting.history.scraper.target["instance"],
            "leader": leadership.is_leader if leadership is not None else False,
        }
    # Reported, never failing the probe: a broken Slack webhook must not restart the pod.
    if state.alerting is not None:
        body["notificationChannels"] = state.alerting.notifier.channel_health()
    sinks = _sink_health(state)
    if sinks:
        body["sinks"] = sinks
        if healthy and any(v["status"] != "ok" for v in sinks.values()):
            body["status"] = "degraded"  # still 200: a slow Loki must not fail the probe
    return body


def _sink_health(state: AppState) -> dict[str, dict[str, Any]]:
    telemetry = state.telemetry
    if telemetry is None:
        return {}
    return {sink.name: {"status": sink.health()} for sink in telemetry.delivering_sinks()}


def _add_probe_routes(app: FastAPI, state: AppState, auth: Authenticator) -> None:

    def health_report() -> FastJSONResponse:
        body = health_data(state)
        ok = body["status"] in ("healthy", "degraded")
        return FastJSONResponse(body, status_code=200 if ok else 503)

    app.get("/health", tags=["probes"], summary="Health of every dependency")(health_report)
    app.get("/api/monitoring/health", tags=["probes"], summary="Same as /health")(health_report)

    @app.get("/ready", tags=["probes"], summary="503 until started, and while shutting down")
    def ready() -> FastJSONResponse:
        if state.is_ready():
            return FastJSONResponse({"status": "ready"})
        reason = "shutting down" if state.shutting_down else state.startup_error or "starting"
        return error_response(503, "not ready", reason)

    @app.get("/live", tags=["probes"], summary="200 while the process serves requests")
    async def live() -> FastJSONResponse:
        return FastJSONResponse({"status": "alive"})

    @app.get(
        "/metrics",
        tags=["probes"],
        summary="Prometheus text (OpenMetrics on request); CODEQUAL_METRICS_TOKEN guards it",
        dependencies=[Depends(auth.metrics_guard)],
    )
    def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(REGISTRY), media_type=content_type)
