"""The FastAPI application: routes, middleware and the lifespan that runs the runtime.

Start-up runs in the background so the process answers probes at once: ``/ready`` is 503 until
migrations have run and the telemetry workers have started (and again while shutting down).
What starts and in which order is :class:`codequal.runtime.process.Runtime`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client.exposition import choose_encoder

from codequal import __version__
from codequal.api.alerts import alerts_router
from codequal.api.analyses import analyses_router, deepwiki_router
from codequal.api.analytics import analytics_router
from codequal.api.anomalies import anomalies_router
from codequal.api.auth import Authenticator, build_authenticator
from codequal.api.dashboards import CachedAnswers, Dashboards
from codequal.api.errors import FastJSONResponse, error_response, install_error_handlers
from codequal.api.ingest import ingest_routes
from codequal.api.ingest_service import IngestService
from codequal.api.middleware import TelemetryMiddleware, first_shortcut
from codequal.api.monitoring import monitoring_router
from codequal.api.otlp_grpc import OtlpGrpcServer
from codequal.api.prom_api import prom_router
from codequal.api.runbooks import install_runbooks
from codequal.api.web import install_web
from codequal.config import Settings
from codequal.runtime.health import health_data
from codequal.runtime.process import Runtime
from codequal.telemetry.metrics import REGISTRY


def create_app(
    settings: Settings, *, set_global_telemetry: bool = False, start_workers: bool = True
) -> FastAPI:
    """Build the app; nothing touches the database until the lifespan starts."""
    runtime = Runtime(settings)
    grpc_server: OtlpGrpcServer | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if grpc_server is not None:
            grpc_server.start()  # answers UNAVAILABLE, as the HTTP routes 503, until ready
        starter = asyncio.create_task(
            asyncio.to_thread(
                runtime.start, stop, set_global=set_global_telemetry, start_workers=start_workers
            )
        )
        try:
            yield
        finally:
            runtime.shutting_down = True
            stop.set()
            if grpc_server is not None:
                await asyncio.to_thread(grpc_server.stop, settings.shutdown_timeout / 4)
            await starter
            await asyncio.to_thread(runtime.stop)

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
    app.state.codequal = runtime
    install_error_handlers(app)
    auth = build_authenticator(settings, runtime.db)
    auth.install(app)
    app.state.auth = auth
    _add_probe_routes(app, runtime, auth)
    if settings.role == "worker":  # probes and /metrics only: the API runs on other replicas
        app.add_middleware(TelemetryMiddleware, state=runtime, shortcut=None)
        return app
    dashboards = Dashboards(runtime, lambda: health_data(runtime))
    monitoring = monitoring_router(runtime, auth.require, dashboards)
    ingest_service = IngestService(runtime.db, runtime.ready)
    ingest, sentry = ingest_routes(ingest_service, auth)
    if settings.otlp_grpc_port:
        grpc_server = OtlpGrpcServer(ingest_service, auth, settings.host, settings.otlp_grpc_port)
    app.state.otlp_grpc = grpc_server
    shortcut = first_shortcut(CachedAnswers(dashboards, auth, runtime), sentry)
    app.add_middleware(TelemetryMiddleware, state=runtime, shortcut=shortcut)
    app.include_router(analyses_router(runtime, auth.require))
    app.include_router(deepwiki_router(runtime, auth.require))
    app.include_router(monitoring)
    app.include_router(analytics_router(runtime, auth.require))
    app.include_router(prom_router(runtime, auth.require))
    app.include_router(
        alerts_router(
            runtime.db,
            auth.require,
            notifier=lambda: runtime.alerting.notifier,
            rules=runtime.alerting.rules_overview,
        )
    )
    app.include_router(ingest)
    app.include_router(anomalies_router(runtime, auth.require))
    install_web(app)
    install_runbooks(app)
    return app


def _add_probe_routes(app: FastAPI, state: Runtime, auth: Authenticator) -> None:

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
