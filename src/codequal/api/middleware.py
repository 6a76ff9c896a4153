"""Every HTTP request measured, traced and logged: a plain ASGI middleware.

The route label is the matched route's template (``/api/analyses/{id}``), never the raw path,
so the series count stays bounded; unmatched paths share the label ``unmatched``, and methods
outside HTTP's standard set share ``_OTHER``. A W3C ``traceparent`` header makes the request's
span a child of the caller's.

This runs for every request, so what can be decided once is: the metric children per
(method, route, status), the logger, and whether a request can carry a trace context at all.

A few hot endpoints are reached by a :class:`Shortcut` instead of the router: the middleware
asks ``shortcut(scope)`` first and, on a match, calls the endpoint's ASGI app itself, under the
route template it names. FastAPI's routing, dependency solving and middleware layers cost more
than these endpoints' own work (a Sentry event, a cached dashboard answer). Anything a shortcut
does not match goes to the router as usual.

An untraced shortcut (a dashboard poll whose answer is cached, see ``dashboards.py``) is only
counted and timed under its route: no span and, as for a probe, no log line. A span with no
children repeating what the metrics say, at the rate every open dashboard polls, would crowd
the analyses' traces out of the span store; a poll that has to compute its answer is traced
like any other request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from codequal.telemetry import context
from codequal.telemetry.metrics import HTTP_DURATION, HTTP_REQUESTS
from codequal.telemetry.tracing import extract_context

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from codequal.runtime.process import Runtime

# Probes and scrapes are polled every few seconds; logging each would drown real traffic.
QUIET_ROUTES = frozenset({"/health", "/ready", "/live", "/metrics"})
# Any other method (a client may send any token) is counted as "_OTHER", so it adds no series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_TRACE_HEADERS = (b"traceparent", b"tracestate")
_EMPTY_CONTEXT = Context()  # no caller's trace: the request's span starts a trace of its own


@dataclass(frozen=True, slots=True)
class Shortcut:
    """A request handled before routing: by ``app``, counted under the template ``route``."""

    route: str
    app: ASGIApp
    traced: bool = True  # False: counted and timed only (no span, no log line)


# The shortcut for a request, or None to route it as usual.
FindShortcut = Callable[["Scope"], Shortcut | None]


def first_shortcut(*finders: FindShortcut) -> FindShortcut:
    """One finder asking each of ``finders`` in turn."""

    def find(scope: Scope) -> Shortcut | None:
        for finder in finders:
            found = finder(scope)
            if found is not None:
                return found
        return None

    return find


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def trace_headers(scope: Scope) -> dict[str, str] | None:
    """The W3C trace-context headers of a request, or None when it carries none (most do not)."""
    found: dict[str, str] | None = None
    for name, value in scope["headers"]:
        # Servers lower-case header names (ASGI requires it); the length test skips most.
        if len(name) in (10, 11) and name.lower() in _TRACE_HEADERS:
            if found is None:
                found = {}
            found[name.decode("latin-1").lower()] = value.decode("latin-1")
    return found


class _Series:
    """The metric children of one (method, route[, status]), looked up once and then reused.

    Both keys are bounded (route templates, standard methods, status codes), so the tables are.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}

    def record(self, method: str, route: str, status: int, elapsed: float) -> None:
        count = self._counts.get((method, route, status))
        if count is None:
            count = HTTP_REQUESTS.labels(method=method, route=route, status=str(status))
            self._counts[(method, route, status)] = count
        duration = self._durations.get((method, route))
        if duration is None:
            duration = HTTP_DURATION.labels(method=method, route=route)
            self._durations[(method, route)] = duration
        count.inc()
        duration.observe(elapsed)


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp, state: Runtime, shortcut: FindShortcut | None = None) -> None:
        self.app = app
        self.state = state
        self._shortcut = shortcut
        self._series = _Series()
        self._log: Any = None  # the "api" logger, once telemetry has started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = self.state.started
        if scope["type"] != "http" or started is None:
            await self.app(scope, receive, send)
            return
        telemetry = started.telemetry
        method = scope["method"]
        if method not in METHODS:
            method = "_OTHER"
        start = time.perf_counter()
        shortcut = self._shortcut(scope) if self._shortcut is not None else None
        inner = self.app
        if shortcut is not None:
            if not shortcut.traced:
                await self._untraced(scope, receive, send, shortcut, method, start)
                return
            inner = shortcut.app
        carried = trace_headers(scope)
        parent = extract_context(carried) if carried is not None else _EMPTY_CONTEXT
        # start_span + attach rather than start_as_current_span: the same span, without the
        # generator-based context managers around it.
        span = telemetry.tracing.tracer.start_span(
            f"HTTP {method}", context=parent, kind=SpanKind.SERVER
        )
        token = otel_context.attach(set_span_in_context(span, parent))
        trace_id = format(span.get_span_context().trace_id, "032x")
        status = 500

        async def send_with_trace(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-trace-id", trace_id.encode()))
            await send(message)

        failure: BaseException | None = None
        try:
            with context.bind(trace_id=trace_id):
                await inner(scope, receive, send_with_trace)
        except Exception as exc:
            status, failure = 500, exc
            telemetry.errors.capture_exception(exc, {"path": scope["path"], "method": method})
            raise
        finally:
            elapsed = time.perf_counter() - start
            try:
                route = shortcut.route if shortcut is not None else route_template(scope)
                self._record(scope, span, method, route, status, elapsed, trace_id)
                if failure is not None:  # as start_as_current_span would have recorded it
                    span.record_exception(failure, escaped=True)
                    span.set_status(
                        Status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}")
                    )
            finally:
                span.end()
                otel_context.detach(token)

    async def _untraced(  # noqa: PLR0917 - one call site, in __call__
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        shortcut: Shortcut,
        method: str,
        start: float,
    ) -> None:
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await shortcut.app(scope, receive, send_status)
        except Exception as exc:
            status = 500
            started = self.state.started
            if started is not None:
                context = {"path": scope["path"], "method": method}
                started.telemetry.errors.capture_exception(exc, context)
            raise
        finally:
            self._series.record(method, shortcut.route, status, time.perf_counter() - start)

    def _record(  # noqa: PLR0917 - one call site, in __call__
        self,
        scope: Scope,
        span: Any,
        method: str,
        route: str,
        status: int,
        elapsed: float,
        trace_id: str,
    ) -> None:
        self._series.record(method, route, status, elapsed)
        if span.is_recording():  # a span the sampler dropped takes no attributes
            span.update_name(f"{method} {route}")
            span.set_attributes(
                {
                    "http.request.method": method,
                    "http.route": route,
                    "http.response.status_code": status,
                }
            )
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        if route in QUIET_ROUTES and status < 500:
            return
        log = self._logger()
        if log is None:
            return
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

    def _logger(self) -> Any:
        if self._log is None and self.state.started is not None:
            self._log = self.state.started.telemetry.logger("api")
        return self._log
