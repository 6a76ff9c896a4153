"""The FastAPI application: routes, middleware and the lifespan that runs the runtime.

Start-up runs in the background so the process answers probes at once: ``/ready`` is 503 until
migrations have run and the telemetry workers have started (and again while shutting down).
What starts and in which order is :class:`codequal.runtime.process.Runtime`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client.exposition import choose_encoder

from codequal import __version__
from codequal.api.alerts import alerts_router
from codequal.api.analyses import analyses_router, deepwiki_router
from codequal.api.analytics import analytics_router
from codequal.api.anomalies import anomalies_router
from codequal.api.auth import Authenticator, build_authenticator
from codequal.api.body_limit import BodyLimitMiddleware
from codequal.api.dashboards import CachedAnswers, Dashboards
from codequal.api.docs import install_docs
from codequal.api.errors import FastJSONResponse, error_response, install_error_handlers
from codequal.api.ingest import ingest_routes
from codequal.api.ingest_service import IngestService
from codequal.api.middleware import TelemetryMiddleware, first_shortcut
from codequal.api.monitoring import monitoring_router
from codequal.api.openapi import PROMETHEUS_TEXT, install_openapi
from codequal.api.otlp_grpc import OtlpGrpcServer, threaded
from codequal.api.prom_api import prom_router
from codequal.api.runbooks import install_runbooks
from codequal.api.web import install_web
from codequal.config import Settings
from codequal.exceptions import ConfigError
from codequal.runtime.health import health_data
from codequal.runtime.process import Runtime
from codequal.runtime.startup import StartupFailed
from codequal.runtime.wiring import repository_policy
from codequal.telemetry.metrics import REGISTRY


def create_app(
    settings: Settings,
    *,
    set_global_telemetry: bool = False,
    start_workers: bool = True,
    on_startup_failure: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the app; nothing touches the database until the lifespan starts.

    ``on_startup_failure`` hears the one-sentence reason when start-up gives up (``codequal
    serve`` prints it and exits); without it the app keeps answering 503 on ``/ready``.
    """
    runtime = Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        grpc_server: OtlpGrpcServer | None = app.state.otlp_grpc
        if grpc_server is not None:
            _start_grpc(grpc_server, on_startup_failure)

        async def start() -> None:
            try:
                await asyncio.to_thread(
                    runtime.start,
                    stop,
                    set_global=set_global_telemetry,
                    start_workers=start_workers,
                )
            except StartupFailed as exc:  # /ready and /health say why from now on
                if on_startup_failure is not None:
                    on_startup_failure(str(exc))

        starter = asyncio.create_task(start())
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
        docs_url=None,  # install_docs serves them without a CDN
        redoc_url=None,
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
    app.state.otlp_grpc = None
    if settings.role == "worker":  # probes and /metrics only: the API runs on other replicas
        app.add_middleware(TelemetryMiddleware, state=runtime, shortcut=None)
        app.add_middleware(BodyLimitMiddleware)
        _add_probe_routes(app, runtime, auth)
        return app
    _install_api(app, runtime, auth)
    install_web(app)
    install_docs(app, "CodeQual")
    install_openapi(app)
    install_runbooks(app)
    return app


def _install_api(app: FastAPI, runtime: Runtime, auth: Authenticator) -> None:
    """Everything but the probes: the API, ingest (HTTP, and gRPC when its port is set)."""
    settings = runtime.settings
    dashboards = Dashboards(runtime, lambda: health_data(runtime))
    monitoring = monitoring_router(runtime, auth.require, dashboards)
    ingest_service = IngestService(runtime.db, runtime.ready, auth.failures)
    ingest, sentry = ingest_routes(ingest_service, auth)
    if settings.otlp_grpc_port:
        app.state.otlp_grpc = OtlpGrpcServer(
            ingest_service,
            auth,
            settings.host,
            settings.otlp_grpc_port,
            threaded=threaded(runtime.db.dialect),
        )
    shortcut = first_shortcut(CachedAnswers(dashboards, auth, runtime), sentry)
    app.add_middleware(TelemetryMiddleware, state=runtime, shortcut=shortcut)
    app.add_middleware(BodyLimitMiddleware)  # outermost: before auth, parsing and telemetry
    _add_probe_routes(app, runtime, auth)
    # Routes are matched in order, each costing its share of every request: ingest first, as
    # it takes most of a busy server's requests (it was matched 12th: ~150 us a request).
    app.include_router(ingest)
    app.include_router(analyses_router(runtime, auth.require, repository_policy(settings)))
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
    app.include_router(anomalies_router(runtime, auth.require))


def _start_grpc(server: OtlpGrpcServer, on_failure: Callable[[str], None] | None) -> None:
    """Bind OTLP/gRPC (it answers UNAVAILABLE, as the HTTP routes answer 503, until ready); a
    taken port is a start-up failure, said in one sentence like the others."""
    try:
        server.start()
    except ConfigError as exc:
        if on_failure is None:
            raise
        on_failure(str(exc))


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
        responses=PROMETHEUS_TEXT,  # type: ignore[arg-type]
    )
    def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(REGISTRY), media_type=content_type)
