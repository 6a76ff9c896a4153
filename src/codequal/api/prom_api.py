"""``/api/v1``: the Prometheus HTTP API over the embedded metric history.

Enough of it for a Grafana Prometheus data source (and ``promtool query``) to point at
CodeQual: instant and range queries, series, label names and values, GET or form-encoded
POST, Prometheus's JSON answers and error shapes. Token scope: ``monitoring:read``.
"""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from codequal.api.errors import FastJSONResponse
from codequal.runtime.process import Runtime
from codequal.telemetry.metrics import QUERIES_REFUSED
from codequal.tsdb import httpapi
from codequal.tsdb.httpapi import APIError, Params, first, success
from codequal.tsdb.promql import Engine, Matcher, PromQLError
from codequal.tsdb.promql.ast_adapter import parse, value_type
from codequal.tsdb.promql.limits import Cancellation, QueryLimits, QueryTimeout
from codequal.tsdb.promql.wire import success_json
from codequal.tsdb.service import query_limits
from codequal.tsdb.store import SampleStore, store_for

Guard = Callable[[str], Any]
BUILD_INFO = {"version": "2.42.0", "revision": "codequal", "branch": "", "buildUser": "",
              "buildDate": "", "goVersion": ""}  # fmt: skip
Evaluate = Callable[[Engine, Cancellation], Any]


async def _params(request: Request) -> dict[str, list[str]]:
    """Form body first, then the URL, as Go's ``r.Form`` orders them."""
    merged: dict[str, list[str]] = {}
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        body = (await request.body()).decode("utf-8", errors="replace")
        for key, value in parse_qsl(body, keep_blank_values=True):
            merged.setdefault(key, []).append(value)
    for key, value in request.query_params.multi_items():
        merged.setdefault(key, []).append(value)
    return merged


def _answer(result: Any) -> Response:
    if isinstance(result, APIError):
        return FastJSONResponse(result.body(), status_code=result.status)
    if isinstance(result, bytes):  # a query's answer, already encoded
        return Response(result, media_type="application/json")
    return FastJSONResponse(success(result))


def _checked_query(params: Params, range_query: bool) -> str:
    """Parse errors and wrong result types are the client's (bad_data), as in Prometheus."""
    query = first(params, "query")
    try:
        kind = value_type(parse(query))
    except PromQLError as exc:
        QUERIES_REFUSED.labels(exc.error_type).inc()
        raise httpapi.bad_param("query", exc.message) from None
    if range_query and kind not in ("scalar", "vector"):
        shown = "range vector" if kind == "matrix" else kind
        raise httpapi.bad_param(
            "query",
            f'invalid expression type "{shown}" for range query, must be Scalar or instant Vector',
        )
    return query


def _timeout(params: Params, most: float) -> float:
    """The ``timeout`` parameter in seconds, never above the server's query timeout."""
    given = httpapi.duration_param(params, "timeout")
    if given is not None and given < 0:
        raise httpapi.bad_param("timeout", f'"{first(params, "timeout")}" is negative')
    return most if given is None else min(given / 1000, most)


async def _cancel_on_disconnect(request: Request, cancel: threading.Event) -> None:
    """Set ``cancel`` when the client goes away (its request body is already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return


class _PromAPI:
    """The handlers, bound to one app's store, query limits and concurrency limit."""

    def __init__(self, store: SampleStore, limits: QueryLimits, concurrency: int) -> None:
        self.store = store
        self.limits = limits
        # The rest wait, within their timeout, rather than starve the server.
        self.limiter = anyio.CapacityLimiter(concurrency)

    async def query(self, request: Request) -> Response:
        params = await _params(request)
        try:
            t = httpapi.time_param(params, "time", httpapi.now_ms())
            if t is None:  # Prometheus's "min time" or "max time": no instant to evaluate at
                raise httpapi.bad_param("time", f'cannot evaluate at "{first(params, "time")}"')
            text = _checked_query(params, range_query=False)
        except APIError as exc:
            return _answer(exc)
        result = await self._evaluate(request, params, lambda e, c: e.instant(text, t, c))
        return _answer(result)

    async def query_range(self, request: Request) -> Response:
        params = await _params(request)
        try:
            start, end, step = httpapi.range_params(params)
            text = _checked_query(params, range_query=True)
        except APIError as exc:
            return _answer(exc)
        result = await self._evaluate(
            request, params, lambda e, c: e.range(text, start, end, step, c)
        )
        return _answer(result)

    async def _evaluate(self, request: Request, params: Params, evaluate: Evaluate) -> Any:
        """Run the query on a worker thread, cancelled when its client goes away; past its
        timeout (waiting for a slot included) answer 503 and let the thread stop itself."""
        try:
            timeout = _timeout(params, self.limits.timeout_seconds)
        except APIError as exc:
            return exc
        engine = Engine(self.store, limits=replace(self.limits, timeout_seconds=timeout))
        cancel = threading.Event()
        async with anyio.create_task_group() as watchers:
            watchers.start_soon(_cancel_on_disconnect, request, cancel)
            try:
                with anyio.fail_after(timeout):
                    return await anyio.to_thread.run_sync(
                        lambda: success_json(evaluate(engine, cancel)),
                        abandon_on_cancel=True,
                        limiter=self.limiter,
                    )
            except TimeoutError:
                return _refused(QueryTimeout())
            except PromQLError as exc:
                return _refused(exc)
            except SQLAlchemyError:
                return APIError("internal", "the metric store is not available")
            finally:
                cancel.set()  # an abandoned evaluation stops at its next check
                watchers.cancel_scope.cancel()

    async def series(self, request: Request) -> Response:
        def fetch(sets: list[list[Matcher]], start: int | None, end: int | None) -> Any:
            found = {labels for m in sets for labels in self.store.series(m, start, end)}
            return [labels.to_dict() for labels in sorted(found)]

        return _answer(await _lookup(request, True, fetch))

    async def labels(self, request: Request) -> Response:
        def fetch(sets: list[list[Matcher]], start: int | None, end: int | None) -> Any:
            if not sets:
                return self.store.label_names((), start, end)
            return sorted({n for m in sets for n in self.store.label_names(m, start, end)})

        return _answer(await _lookup(request, False, fetch))

    async def label_values(self, name: str, request: Request) -> Response:
        def fetch(sets: list[list[Matcher]], start: int | None, end: int | None) -> Any:
            httpapi.label_name(name)
            if not sets:
                return self.store.label_values(name, (), start, end)
            values = (self.store.label_values(name, m, start, end) for m in sets)
            return sorted({v for found in values for v in found})

        return _answer(await _lookup(request, False, fetch))

    def buildinfo(self) -> Response:
        return _answer(BUILD_INFO)


def _refused(exc: PromQLError) -> APIError:
    QUERIES_REFUSED.labels(exc.error_type).inc()
    return APIError(exc.error_type, exc.message)


async def _lookup(request: Request, need_match: bool, fetch: Callable[..., Any]) -> Any:
    """Parse match[], start and end, then run ``fetch`` on a worker thread."""
    params = await _params(request)
    try:
        matcher_sets = httpapi.match_params(params, required=need_match)
        start = httpapi.time_param(params, "start", None)
        end = httpapi.time_param(params, "end", None)
        return await anyio.to_thread.run_sync(fetch, matcher_sets, start, end)
    except APIError as exc:
        return exc
    except SQLAlchemyError:
        return APIError("internal", "the metric store is not available")


def prom_router(state: Runtime, require: Guard) -> APIRouter:
    """``/api/v1/...`` on the process's store for ``state.db`` (scope ``monitoring:read``)."""
    settings = state.settings
    api = _PromAPI(store_for(state.db), query_limits(settings), settings.query_max_concurrency)
    router = APIRouter(
        prefix="/api/v1", tags=["prometheus"], dependencies=[Depends(require("monitoring:read"))]
    )
    for path, handler, summary in (
        ("/query", api.query, "Instant query"),
        ("/query_range", api.query_range, "Range query"),
        ("/series", api.series, "Series matching match[]"),
        ("/labels", api.labels, "Label names"),
    ):
        for method in ("GET", "POST"):  # Grafana POSTs form-encoded queries
            name = f"prom_{path.strip('/')}_{method.lower()}"  # one OpenAPI id per method
            router.add_api_route(
                path, handler, methods=[method], summary=summary, operation_id=name
            )
    router.add_api_route("/label/{name}/values", api.label_values, summary="A label's values")
    router.add_api_route("/status/buildinfo", api.buildinfo, summary="The Prometheus version")
    return router
