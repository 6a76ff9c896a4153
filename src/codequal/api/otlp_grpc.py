"""OTLP over gRPC: the Trace, Logs and Metrics services on ``CODEQUAL_OTLP_GRPC_PORT`` (4317).

The default transport of most OpenTelemetry SDKs and of the Collector's ``otlp`` exporter. Each
call goes the way of an OTLP/HTTP request: the same credential (gRPC metadata
``authorization: Bearer <token or service key>``, scope ``ingest:write``), the same per-key rate
limit, the same conversions and stores (:class:`~codequal.api.ingest_service.IngestService`), and
the same partial success. gzip-compressed messages are undone by gRPC itself, within the same
decompressed size limit as OTLP/HTTP. Refusals use the status codes the OTLP specification
names: ``INVALID_ARGUMENT`` for bad data (not retried), ``UNAUTHENTICATED``,
``PERMISSION_DENIED``, and ``RESOURCE_EXHAUSTED`` / ``UNAVAILABLE`` with a ``RetryInfo`` when a
retry later will succeed. Calls beyond ``max_calls`` at once are refused with
``RESOURCE_EXHAUSTED`` (each holds its message, up to the size limit).

Where a call's work runs depends on what a write waits for (:func:`threaded`):

- SQLite (``threaded=False``): grpc.aio's server, on an event loop of its own thread. Spans and
  log records are decoded and stored in the call's coroutine, on that thread. A SQLite write is
  work on the CPU in this process, and the GIL runs one thread at a time anyway: grpc's threaded
  server handed each call from its poller thread to a pool thread, and the message after it,
  which cost as much as uvicorn's whole share of an OTLP/HTTP request.
- PostgreSQL (``threaded=True``): grpc's threaded server, ``POSTGRES_THREADS`` threads. A write
  waits on the network; while it waits, the other threads decode the next calls, and group
  commit puts the items of the calls waiting meanwhile in one transaction. On one loop, calls
  of 10 spans were a quarter slower than with threads (0.98x HTTP's rate against 1.24x).

Metric points go to the metric-history thread either way, as OTLP/HTTP's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from starlette.requests import Request

from codequal.api.auth import Authenticator, AuthHTTPError
from codequal.api.ingest_service import (
    IngestService,
    on_tsdb_worker,
    principal_key,
    storage_error,
    wait_for_tsdb_worker,
)
from codequal.exceptions import ConfigError
from codequal.ingest import IngestError, otlp, otlp_metrics
from codequal.ingest.limits import OTLP
from codequal.security.tokens import SCOPE_INGEST_WRITE, Principal

DEFAULT_MAX_CALLS = 64
POSTGRES_THREADS = 8
# googleapis-common-protos (installed with the OTLP exporter) ships no type information.
_error_details: Any = importlib.import_module("google.rpc.error_details_pb2")
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.INVALID_ARGUMENT,  # resending the same message cannot succeed
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_REFUSED = (IngestError, AuthHTTPError, sa.exc.SQLAlchemyError)
Convert = Callable[[IngestService, Any], otlp.Decoded]
Context = grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]
_MALFORMED = object()


def threaded(dialect: str) -> bool:
    """Whether calls are served by threads (PostgreSQL) or on one event loop (SQLite)."""
    return dialect != "sqlite"


def _traces(ingest: IngestService, body: bytes) -> otlp.Decoded:
    # Read from the message's bytes (codequal.ingest.span_wire): no request type.
    return ingest.otlp_traces(otlp.traces_from_bytes(body))


def _logs(ingest: IngestService, request: Any) -> otlp.Decoded:
    return ingest.otlp_logs(otlp.logs_from(request, ingest.clock()))


def _metrics(ingest: IngestService, request: Any) -> otlp.Decoded:
    return ingest.otlp_metrics(otlp_metrics.metrics_from(request, ingest.clock()))


# service name -> (signal, request type, conversion and storing)
_SERVICES: dict[str, tuple[otlp.Signal, Any, Convert]] = {
    "opentelemetry.proto.collector.trace.v1.TraceService": ("traces", None, _traces),
    "opentelemetry.proto.collector.logs.v1.LogsService": (
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        _logs,
    ),
    "opentelemetry.proto.collector.metrics.v1.MetricsService": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        _metrics,
    ),
}


class OtlpGrpcServer:
    """``OtlpGrpcServer(ingest, auth, host, port, threaded=...)``; :meth:`start` binds and
    returns the port."""

    def __init__(
        self,
        ingest: IngestService,
        auth: Authenticator,
        host: str,
        port: int,
        *,
        threaded: bool,
        max_calls: int = DEFAULT_MAX_CALLS,
    ) -> None:
        self._ingest, self._auth = ingest, auth
        self._address = f"{host}:{port}"
        self._threaded, self._max_calls = threaded, max_calls
        self._server: grpc.Server | grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> int:
        """Bind and serve; ConfigError naming the setting when the port cannot be bound."""
        self.port = self._start_threads() if self._threaded else self._start_loop()
        if not self.port:
            raise ConfigError(
                f"CODEQUAL_OTLP_GRPC_PORT: cannot listen on {self._address} (is the port in "
                "use?); choose another port, or 0 to turn OTLP/gRPC off"
            )
        return self.port

    def stop(self, grace: float) -> None:
        """Refuse new calls and let running ones finish for up to ``grace`` seconds."""
        server, loop, thread = self._server, self._loop, self._thread
        self._server = self._loop = self._thread = None
        if isinstance(server, grpc.Server):
            server.stop(grace).wait(grace + 1.0)
        elif server is not None and loop is not None and thread is not None:
            stopping = asyncio.run_coroutine_threadsafe(server.stop(grace), loop)
            with contextlib.suppress(TimeoutError):
                stopping.result(grace + 1.0)
            _close(loop, thread)

    def _start_threads(self) -> int:
        pool = ThreadPoolExecutor(POSTGRES_THREADS, thread_name_prefix="cq-otlp-grpc")
        server = grpc.server(pool, options=_OPTIONS, maximum_concurrent_rpcs=self._max_calls)
        server.add_generic_rpc_handlers(self._handlers())
        port = _bind(server, self._address)
        if port:
            server.start()
            self._server = server
        else:
            pool.shutdown(wait=False)
        return port

    def _start_loop(self) -> int:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="cq-otlp-grpc", daemon=True)
        thread.start()
        port = 0
        try:
            port = asyncio.run_coroutine_threadsafe(self._serve_on_loop(), loop).result()
        finally:
            if port:
                self._loop, self._thread = loop, thread
            else:
                _close(loop, thread)
        return port

    async def _serve_on_loop(self) -> int:
        server = grpc.aio.server(options=_OPTIONS, maximum_concurrent_rpcs=self._max_calls)
        server.add_generic_rpc_handlers(self._handlers())
        port = _bind(server, self._address)
        if port:
            await server.start()
            self._server = server
        return port

    def _handlers(self) -> list[grpc.GenericRpcHandler]:
        return [self._handler(name, *service) for name, service in _SERVICES.items()]

    def _handler(
        self, service: str, signal: otlp.Signal, request_type: Any, convert: Convert
    ) -> grpc.GenericRpcHandler:
        export: Callable[[Any, Any], Any]
        if self._threaded:

            def export(request: Any, context: grpc.ServicerContext) -> Any:
                return self._export_in_thread(signal, convert, request, context)

        else:

            async def export(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                return await self._export_on_loop(signal, convert, request, context)

        def parse(body: bytes) -> Any:
            # Parsed here, not by gRPC, so a malformed message is INVALID_ARGUMENT, not INTERNAL.
            if request_type is None:
                return body  # read by ``convert``, which refuses a malformed one (400)
            try:
                return request_type.FromString(body)
            except DecodeError:
                return _MALFORMED  # not None: gRPC takes None for a failed deserializer

        method: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
            export,
            request_deserializer=parse,
            response_serializer=lambda message: message.SerializeToString(),
        )
        return grpc.method_handlers_generic_handler(service, {"Export": method})

    def _export_in_thread(
        self, signal: otlp.Signal, convert: Convert, request: Any, context: grpc.ServicerContext
    ) -> Any:
        try:
            self._admit(signal, request, context)
            if signal == "metrics":
                decoded = wait_for_tsdb_worker(convert, self._ingest, request)
            else:
                decoded = convert(self._ingest, request)
            return otlp.response_message(signal, decoded)
        except _REFUSED as exc:
            code, message, trailing = _refusal(exc)
            context.set_trailing_metadata(trailing)
            context.abort(code, message)

    async def _export_on_loop(
        self,
        signal: otlp.Signal,
        convert: Convert,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        try:
            self._admit(signal, request, context)
            if signal == "metrics":
                decoded = await on_tsdb_worker(convert, self._ingest, request)
            else:  # stored here: the loop waits, as what it would do meanwhile needs the GIL
                decoded = convert(self._ingest, request)
            return otlp.response_message(signal, decoded)
        except _REFUSED as exc:
            code, message, trailing = _refusal(exc)
            context.set_trailing_metadata(trailing)
            await context.abort(code, message)

    def _admit(self, signal: otlp.Signal, request: Any, context: Context) -> None:
        """The credential, readiness and rate checks, then the message's."""
        principal = self._authorize(context, signal)
        self._ingest.admit(principal_key(principal))
        if request is _MALFORMED:
            raise IngestError(400, f"the message is not a valid OTLP {signal} export request")

    def _authorize(self, context: Context, signal: str) -> Principal:
        """The HTTP check, fed the call's ``authorization`` metadata and peer address."""
        metadata = context.invocation_metadata() or ()
        header = next((v for k, v in metadata if k == "authorization"), None)
        headers = [(b"authorization", str(header).encode("latin-1"))] if header else []
        scope = {
            "type": "http",
            "method": "POST",
            "scheme": "http",  # what starlette can build a URL from; the path says gRPC
            "path": f"/otlp-grpc/{signal}",
            "raw_path": f"/otlp-grpc/{signal}".encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": _peer(context.peer()),
            "server": ("otlp-grpc", self.port),
        }
        return self._auth.authorize(Request(scope), SCOPE_INGEST_WRITE)


_OPTIONS = [
    ("grpc.max_receive_message_length", OTLP.decompressed),
    ("grpc.so_reuseport", 0),  # a second server on the port must fail, not share it
]


def _bind(server: grpc.Server | grpc.aio.Server, address: str) -> int:
    try:
        return server.add_insecure_port(address)
    except RuntimeError:
        return 0


def _close(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def _peer(peer: str) -> tuple[str, int]:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` as (host, port) for the failure limiter."""
    _, _, address = peer.partition(":")
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "unknown", int(port) if port.isdigit() else 0


def _refusal(
    exc: IngestError | AuthHTTPError | sa.exc.SQLAlchemyError,
) -> tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]:
    """The status, its message, and the trailing RetryInfo when a retry later will succeed."""
    if isinstance(exc, sa.exc.SQLAlchemyError):
        exc = storage_error(exc)
    if isinstance(exc, IngestError):
        status, message, retry = exc.status, exc.message, exc.headers.get("Retry-After")
    else:
        status, message = exc.status_code, exc.message
        retry = (exc.headers or {}).get("Retry-After")
    code = _CODES.get(status, grpc.StatusCode.INVALID_ARGUMENT)
    if retry is None or code not in (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
    ):
        return code, message, ()
    info = _error_details.RetryInfo()
    info.retry_delay.seconds = int(float(retry))
    return code, message, (("google.rpc.retryinfo-bin", info.SerializeToString()),)
