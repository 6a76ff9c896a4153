"""OTLP over gRPC: the Trace, Logs and Metrics services on ``CODEQUAL_OTLP_GRPC_PORT`` (4317).

The default transport of most OpenTelemetry SDKs and of the Collector's ``otlp`` exporter. Each
call goes the way of an OTLP/HTTP request: the same credential (gRPC metadata
``authorization: Bearer <token or service key>``, scope ``ingest:write``), the same per-key rate
limit, the same conversions and stores (:class:`~codequal.api.ingest_service.IngestService`), and
the same partial success. gzip-compressed messages are undone by gRPC itself, within the same
decompressed size limit as OTLP/HTTP. Refusals use the status codes the OTLP specification
names: ``INVALID_ARGUMENT`` for bad data (not retried), ``UNAUTHENTICATED``,
``PERMISSION_DENIED``, and ``RESOURCE_EXHAUSTED`` / ``UNAVAILABLE`` with a ``RetryInfo`` when a
retry later will succeed.

The server is grpc.aio's, on an event loop of its own thread. Spans and log records are decoded
and stored on that thread, in the call's coroutine: the GIL lets one thread run Python at a time
anyway, and handing each call to a pool thread (grpc's synchronous server) cost about as much
as the whole of uvicorn's part of an OTLP/HTTP request. Metric points go to the metric-history
thread, as OTLP/HTTP's do, while the loop serves other calls. A write that waits (SQLite's
writer lock, PostgreSQL's round trip) holds up the calls behind it on this server, not those on
HTTP; calls beyond ``max_calls`` at once are refused with ``RESOURCE_EXHAUSTED``, and gRPC
queues at most ``grpc.max_pending_requests`` unanswered calls before refusing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from collections.abc import Awaitable, Callable
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
)
from codequal.exceptions import ConfigError
from codequal.ingest import IngestError, otlp, otlp_metrics
from codequal.ingest.limits import OTLP
from codequal.security.tokens import SCOPE_INGEST_WRITE, Principal

DEFAULT_MAX_CALLS = 64  # calls at once: each holds its message (up to OTLP.decompressed)
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
Convert = Callable[[IngestService, Any], Awaitable[otlp.Decoded]]
_MALFORMED = object()
_Context = grpc.aio.ServicerContext[Any, Any]


async def _traces(ingest: IngestService, body: bytes) -> otlp.Decoded:
    # Read from the message's bytes (codequal.ingest.span_wire): no request type.
    return ingest.otlp_traces(otlp.traces_from_bytes(body))


async def _logs(ingest: IngestService, request: Any) -> otlp.Decoded:
    return ingest.otlp_logs(otlp.logs_from(request, ingest.clock()))


async def _metrics(ingest: IngestService, request: Any) -> otlp.Decoded:
    return await on_tsdb_worker(
        lambda: ingest.otlp_metrics(otlp_metrics.metrics_from(request, ingest.clock()))
    )


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
    """``OtlpGrpcServer(ingest, auth, host, port)``; :meth:`start` binds and returns the port."""

    def __init__(
        self,
        ingest: IngestService,
        auth: Authenticator,
        host: str,
        port: int,
        *,
        max_calls: int = DEFAULT_MAX_CALLS,
    ) -> None:
        self._ingest, self._auth = ingest, auth
        self._address = f"{host}:{port}"
        self._max_calls = max_calls
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: grpc.aio.Server | None = None
        self.port = 0

    def start(self) -> int:
        """Bind and serve; ConfigError naming the setting when the port cannot be bound."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="cq-otlp-grpc", daemon=True)
        thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._bind(), loop).result()
        finally:
            if not self.port:
                _close(loop, thread)
        if not self.port:
            raise ConfigError(
                f"CODEQUAL_OTLP_GRPC_PORT: cannot listen on {self._address} (is the port in "
                "use?); choose another port, or 0 to turn OTLP/gRPC off"
            )
        self._loop, self._thread = loop, thread
        return self.port

    async def _bind(self) -> int:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", OTLP.decompressed),
                ("grpc.so_reuseport", 0),  # a second server on the port must fail, not share it
            ],
            maximum_concurrent_rpcs=self._max_calls,
        )
        server.add_generic_rpc_handlers(
            [self._handler(name, *service) for name, service in _SERVICES.items()]
        )
        try:
            port = server.add_insecure_port(self._address)
        except RuntimeError:
            port = 0
        if port:
            await server.start()
            self._server = server
        return port

    def stop(self, grace: float) -> None:
        """Refuse new calls and let running ones finish for up to ``grace`` seconds."""
        loop, thread, server = self._loop, self._thread, self._server
        if loop is None or thread is None or server is None:
            return
        self._loop = self._thread = self._server = None
        stopping = asyncio.run_coroutine_threadsafe(server.stop(grace), loop)
        with contextlib.suppress(TimeoutError):
            stopping.result(grace + 1.0)
        _close(loop, thread)

    def _handler(
        self, service: str, signal: otlp.Signal, request_type: Any, convert: Convert
    ) -> Any:
        async def export(request: Any, context: _Context) -> Any:
            return await self._export(signal, convert, request, context)

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

    async def _export(
        self, signal: otlp.Signal, convert: Convert, request: Any, context: _Context
    ) -> Any:
        try:
            principal = self._authorize(context, signal)
            self._ingest.admit(principal_key(principal))
            if request is _MALFORMED:
                raise IngestError(400, f"the message is not a valid OTLP {signal} export request")
            return otlp.response_message(signal, await convert(self._ingest, request))
        except IngestError as exc:
            await _abort(context, exc.status, exc.message, exc.headers.get("Retry-After"))
        except AuthHTTPError as exc:
            retry = (exc.headers or {}).get("Retry-After")
            await _abort(context, exc.status_code, exc.message, retry)
        except sa.exc.SQLAlchemyError as exc:
            refused = storage_error(exc)
            await _abort(
                context, refused.status, refused.message, refused.headers.get("Retry-After")
            )
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    def _authorize(self, context: _Context, signal: str) -> Principal:
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


def _peer(peer: str) -> tuple[str, int]:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` as (host, port) for the failure limiter."""
    _, _, address = peer.partition(":")
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "unknown", int(port) if port.isdigit() else 0


def _close(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


async def _abort(context: _Context, status: int, message: str, retry: str | None) -> None:
    code = _CODES.get(status, grpc.StatusCode.INVALID_ARGUMENT)
    if retry is not None and code in (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
    ):
        info = _error_details.RetryInfo()
        info.retry_delay.seconds = int(float(retry))
        context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
    await context.abort(code, message)
