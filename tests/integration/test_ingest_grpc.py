"""OTLP over gRPC with the real OpenTelemetry gRPC exporters, on a free loopback port (never
4317): the same stores, keys, partial success and status codes as OTLP/HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

from codequal.security.key_store import KeyStore
from codequal.telemetry.stores.logs import LogQuery, LogStore
from codequal.telemetry.stores.spans import SpanStore

from .test_ingest_metrics import query, sdk_metrics
from .test_ingest_otlp import RESOURCE, finished_spans
from .test_ingest_server import INGEST, READ, Server, free_port, run_server

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
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
    target = grpc_endpoint(server).removeprefix("http://")
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(TRACE_EXPORT)
        answer: bytes = call(body, metadata=metadata, timeout=30)
    return answer


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
