"""OTLP over gRPC with the real OpenTelemetry gRPC exporters, on a free loopback port (never
4317): the same stores, keys, partial success and status codes as OTLP/HTTP. On SQLite the
calls are served on the server's event loop, on PostgreSQL by its threads: every test that
takes a database runs on both."""

from __future__ import annotations

import contextlib
import importlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from codequal.api.auth import build_authenticator
from codequal.api.ingest_service import IngestService, wait_for_tsdb_worker
from codequal.api.otlp_grpc import DEFAULT_MAX_CALLS, OtlpGrpcServer, threaded
from codequal.exceptions import ConfigError
from codequal.ingest.limits import RateLimiter
from codequal.security.key_store import KeyStore
from codequal.storage.db import Database
from codequal.telemetry.stores.logs import LogQuery, LogStore
from codequal.telemetry.stores.spans import SpanStore

from .test_ingest_metrics import query, sdk_metrics
from .test_ingest_otlp import RESOURCE, finished_spans
from .test_ingest_server import INGEST, READ, Server, free_port, ingest_settings, run_server

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
RETRY_INFO: Any = importlib.import_module("google.rpc.error_details_pb2").RetryInfo
METADATA = (("authorization", INGEST["Authorization"]),)


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    with run_server(tmp_path / "srv", database_url, otlp_grpc_port=free_port()) as running:
        yield running


def grpc_endpoint(server: Server) -> str:
    port = server.app.state.otlp_grpc.port
    assert port and port != 4317
    return f"http://127.0.0.1:{port}"


def test_real_grpc_span_exporter_with_gzip_stores_the_trace(server: Server) -> None:
    spans, trace_id = finished_spans()
    exporter = OTLPSpanExporter(
        endpoint=grpc_endpoint(server),
        insecure=True,
        headers=dict(METADATA),
        compression=grpc.Compression.Gzip,
    )
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    stored = {s.name: s for s in SpanStore(server.state.db).trace(trace_id)}
    assert set(stored) == {"GET /cart", "charge"}
    assert stored["charge"].parent_span_id == stored["GET /cart"].span_id
    assert stored["GET /cart"].service == "checkout"


def test_real_grpc_log_exporter_with_a_service_key_stores_the_records(server: Server) -> None:
    _, key = KeyStore(server.state.db).create("otel-collector", ["ingest:write"])
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("shop").emit(
        severity_number=SeverityNumber.ERROR, body="payment failed over gRPC"
    )
    exporter = OTLPLogExporter(
        endpoint=grpc_endpoint(server), insecure=True, headers={"authorization": f"Bearer {key}"}
    )
    assert exporter.export(memory.get_finished_logs()) == LogRecordExportResult.SUCCESS
    (row,) = LogStore(server.state.db).query(LogQuery(service="checkout"))
    assert (row["level"], row["action"]) == ("error", "payment failed over gRPC")


def test_real_grpc_metric_exporter_lands_in_the_tsdb(server: Server) -> None:
    exporter = OTLPMetricExporter(
        endpoint=grpc_endpoint(server), insecure=True, headers=dict(METADATA)
    )
    assert exporter.export(sdk_metrics()) == MetricExportResult.SUCCESS
    exporter.shutdown()
    (orders,) = query(server, 'shop_orders_total{job="shop"}')
    assert orders["value"][1] == "4"


def export_raw(server: Server, body: bytes, metadata: tuple[tuple[str, str], ...]) -> bytes:
    return export_to(server.app.state.otlp_grpc.port, body, metadata)


def export_to(port: int, body: bytes, metadata: tuple[tuple[str, str], ...] = METADATA) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(TRACE_EXPORT)
        answer: bytes = call(body, metadata=metadata, timeout=30)
    return answer


def spans_request(trace: int, first: int, count: int) -> bytes:
    """``count`` spans of trace ``trace`` (ids from ``first``), as an SDK batch serialises."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n in range(first, first + count):
        span = spans.add(trace_id=trace.to_bytes(16, "big"), span_id=(n + 1).to_bytes(8, "big"))
        span.name, span.start_time_unix_nano, span.end_time_unix_nano = f"op {n}", 10**18, 10**18
    return request.SerializeToString()


@contextlib.contextmanager
def grpc_alone(
    database: Database,
    limiter: RateLimiter | None = None,
    ready: bool = True,
    max_calls: int = DEFAULT_MAX_CALLS,
) -> Iterator[int]:
    """Only the OTLP/gRPC server, on a free port, with an injected limiter and readiness."""
    settings = ingest_settings(Path("unused"), "sqlite://")  # the secret the tokens carry
    started = threading.Event()
    if ready:
        started.set()
    auth = build_authenticator(settings, database)
    server = OtlpGrpcServer(
        IngestService(database, started, auth.failures, limiter),
        auth,
        "127.0.0.1",
        0,
        threaded=threaded(database.dialect),
        max_calls=max_calls,
    )
    port = server.start()
    try:
        yield port
    finally:
        server.stop(1.0)


def refusal(port: int) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        export_to(port, spans_request(7, 0, 1))
    return caught.value


def retry_delay(error: grpc.RpcError) -> int:
    trailing = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    seconds: int = RETRY_INFO.FromString(trailing["google.rpc.retryinfo-bin"]).retry_delay.seconds
    return seconds


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer not-a-token"),), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", READ["Authorization"]),), grpc.StatusCode.PERMISSION_DENIED),
        (METADATA, grpc.StatusCode.INVALID_ARGUMENT),  # a body that is no protobuf
    ],
)
def test_refusals_use_the_standard_status_codes(
    server: Server, metadata: tuple[tuple[str, str], ...], code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        export_raw(server, b"\xff\xff\xff garbage", metadata)
    assert caught.value.code() == code  # type: ignore[attr-defined]
    assert caught.value.details()  # type: ignore[attr-defined]


def test_invalid_spans_are_refused_alone_in_partial_success(server: Server) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="good")
    spans.add(trace_id=b"\x00" * 16, span_id=b"\x02" * 8, name="bad")
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(
        export_raw(server, request.SerializeToString(), METADATA)
    )
    assert answer.partial_success.rejected_spans == 1
    assert "trace_id" in answer.partial_success.error_message
    assert [s.name for s in SpanStore(server.state.db).trace("01" * 16)] == ["good"]


def test_a_message_over_the_size_limit_is_refused_by_grpc(server: Server) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name = "x" * (64 * 1024 * 1024 + 1)
    with pytest.raises(grpc.RpcError) as caught:
        export_raw(server, request.SerializeToString(), METADATA)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]


def test_grpc_is_off_with_port_zero(tmp_path: Path) -> None:
    with run_server(tmp_path / "srv", f"sqlite:///{tmp_path / 'db.sqlite'}") as server:
        assert server.app.state.otlp_grpc is None


def test_a_key_over_its_rate_is_told_when_to_retry(database: Database) -> None:
    limiter = RateLimiter(rate=0.1, burst=1, clock=lambda: 0.0)  # time stands still
    with grpc_alone(database, limiter) as port:
        export_to(port, spans_request(5, 0, 3))
        refused = refusal(port)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert "rate limit" in refused.details()  # type: ignore[attr-defined]
    assert retry_delay(refused) == 10  # one token at 0.1 a second
    assert len(SpanStore(database).trace("05".rjust(32, "0"))) == 3  # the first was kept


def test_a_server_still_starting_answers_unavailable(database: Database) -> None:
    with grpc_alone(database, ready=False) as port:
        refused = refusal(port)
    assert refused.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert retry_delay(refused) == 1


def test_a_taken_port_is_a_sentence_naming_the_setting(database: Database) -> None:
    settings = ingest_settings(Path("unused"), "sqlite://")
    auth = build_authenticator(settings, database)
    ingest = IngestService(database, threading.Event(), auth.failures)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sentence = f"CODEQUAL_OTLP_GRPC_PORT: cannot listen on 127.0.0.1:{port}"
        with pytest.raises(ConfigError, match=sentence):
            OtlpGrpcServer(
                ingest, auth, "127.0.0.1", port, threaded=threaded(database.dialect)
            ).start()
    assert not [t for t in threading.enumerate() if t.name == "cq-otlp-grpc"]  # nothing left


def test_concurrent_exporters_lose_nothing(database: Database) -> None:
    """Calls are decoded and stored one after another on the server's thread: eight clients at
    once, each with its own trace, get every span stored and every call answered."""
    clients, calls, spans = 8, 10, 50

    def send(client: int) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(TRACE_EXPORT)
            for n in range(calls):
                call(spans_request(100 + client, n * spans, spans), metadata=METADATA, timeout=30)

    with grpc_alone(database) as port, ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, range(clients)))
    for client in range(clients):
        stored = SpanStore(database).trace(f"{100 + client:032x}")
        assert len(stored) == calls * spans, client


def test_calls_over_the_limit_at_once_are_refused(database: Database) -> None:
    """With room for one call, a second one while the first waits for the metric-history
    thread is RESOURCE_EXHAUSTED (an OTLP exporter retries it); once the first ends, calls
    are served again and nothing accepted is lost."""
    release = threading.Event()
    stored = 0
    with grpc_alone(database, max_calls=1) as port, ThreadPoolExecutor(2) as pool:
        held = pool.submit(wait_for_tsdb_worker, release.wait)  # the metric thread is busy
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            metrics = channel.unary_unary(METRICS_EXPORT)
            deadline, refused, waiting = time.monotonic() + 30, None, None
            while refused is None and time.monotonic() < deadline:
                if waiting is None or waiting.done():  # refused: a span call had the room
                    waiting = pool.submit(metrics, b"", metadata=METADATA)
                try:  # stored at once until the metrics call is in (it may not be yet)
                    export_to(port, spans_request(9, stored, 1))
                    stored += 1
                except grpc.RpcError as exc:
                    if not waiting.done():  # else the room was not the metrics call's
                        refused = exc
            release.set()
            held.result(10)
            assert waiting is not None
            waiting.result(30)  # the call that had the room was answered
        assert refused is not None, "no call was refused"
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        while time.monotonic() < deadline:  # the room is given back just after the answer
            with contextlib.suppress(grpc.RpcError):
                export_to(port, spans_request(9, stored, 1))
                stored += 1
                break
    assert len(SpanStore(database).trace(f"{9:032x}")) == stored > 0
