"""Every HTTP request measured, traced and logged: a plain ASGI middleware.

The route label is the matched route's template (``/api/analyses/{id}``), never the raw path,
so the series count stays bounded; unmatched paths share the label ``unmatched``. A W3C
``traceparent`` header makes the request's span a child of the caller's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from codequal.telemetry import context
from codequal.telemetry.metrics import HTTP_DURATION, HTTP_REQUESTS
from codequal.telemetry.tracing import extract_context

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from codequal.api.state import AppState

# Probes and scrapes are polled every few seconds; logging each would drown real traffic.
QUIET_ROUTES = frozenset({"/health", "/ready", "/live", "/metrics"})


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        telemetry = self.state.telemetry
        if scope["type"] != "http" or telemetry is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        status = 500
        start = time.perf_counter()
        tracer = telemetry.tracing.tracer
        with tracer.start_as_current_span(
            f"HTTP {method}", context=extract_context(headers), kind=SpanKind.SERVER
        ) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")

            async def send_with_trace(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message.setdefault("headers", []).append((b"x-trace-id", trace_id.encode()))
                await send(message)

            try:
                with context.bind(trace_id=trace_id):
                    await self.app(scope, receive, send_with_trace)
            except Exception as exc:
                status = 500
                telemetry.errors.capture_exception(exc, {"path": scope["path"], "method": method})
                raise
            finally:
                elapsed = time.perf_counter() - start
                self._record(scope, span, status=status, elapsed=elapsed, trace_id=trace_id)

    def _record(
        self, scope: Scope, span: Any, *, status: int, elapsed: float, trace_id: str
    ) -> None:
        method = scope["method"]
        route = route_template(scope)
        span.update_name(f"{method} {route}")
        span.set_attribute("http.request.method", method)
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
        HTTP_DURATION.labels(method=method, route=route).observe(elapsed)
        if route in QUIET_ROUTES and status < 500:
            return
        telemetry = self.state.telemetry
        if telemetry is not None:
            log = telemetry.logger("api")
            level = log.error if status >= 500 else log.warning if status >= 400 else log.info
            level(
                "http request",
                method=method,
                route=route,
                path=scope["path"],
                status=status,
                duration=elapsed,
                trace_id=trace_id,
            )
