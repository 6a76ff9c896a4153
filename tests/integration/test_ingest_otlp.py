"""OTLP/HTTP ingest with the real OpenTelemetry exporters, and the JSON encoding by hand."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from codequal.telemetry.stores.logs import LogQuery, LogStore
from codequal.telemetry.stores.spans import SpanStore

from .test_ingest_server import INGEST, READ, Server, run_server


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    with run_server(tmp_path / "srv", database_url) as running:
        yield running


RESOURCE = Resource.create({"service.name": "checkout", "deployment.environment": "test"})
TRACE_ID = "5b8efff798038103d269b633813fc60c"


def finished_spans() -> tuple[Sequence[ReadableSpan], str]:
    """A small trace made by the real SDK: a server span with a client child that failed."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("shop")
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/cart")
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as child:
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "card declined"))
    provider.shutdown()
    return memory.get_finished_spans(), format(root.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.Deflate])
def test_real_span_exporter_spans_are_queryable_by_trace_id(
    server: Server, compression: Compression
) -> None:
    spans, trace_id = finished_spans()
    exporter = OTLPSpanExporter(
        endpoint=f"{server.base}/v1/traces", headers=INGEST, compression=compression
    )
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    stored = {s.name: s for s in SpanStore(server.state.db).trace(trace_id)}
    assert set(stored) == {"GET /cart", "charge"}
    root, child = stored["GET /cart"], stored["charge"]
    assert (root.kind, root.service, root.parent_span_id) == ("SERVER", "checkout", None)
    assert root.attributes["http.route"] == "/cart"
    assert (child.kind, child.status, child.status_message) == ("CLIENT", "ERROR", "card declined")
    assert child.parent_span_id == root.span_id
    assert child.events[0]["name"] == "retry" and child.events[0]["attributes"] == {"attempt": 2}
    tree = httpx.get(f"{server.base}/api/monitoring/traces/{trace_id}", headers=READ).json()
    assert tree  # the monitoring API serves the ingested trace


def test_real_log_exporter_logs_land_in_the_log_store_and_api(server: Server) -> None:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("shop")
    tracer = TracerProvider(resource=RESOURCE).get_tracer("shop")
    with tracer.start_as_current_span("checkout") as span:
        logger.emit(
            severity_number=SeverityNumber.WARN,
            severity_text="WARNING",
            body="cart c-1 is stale",
            attributes={"cart.id": "c-1"},
        )
        logger.emit(severity_number=SeverityNumber.ERROR, body="payment failed")
    trace_id = format(span.get_span_context().trace_id, "032x")
    exporter = OTLPLogExporter(
        endpoint=f"{server.base}/v1/logs", headers=INGEST, compression=Compression.Gzip
    )
    assert exporter.export(memory.get_finished_logs()) == LogRecordExportResult.SUCCESS
    rows = LogStore(server.state.db).query(LogQuery(trace_id=trace_id))
    assert {(r["level"], r["action"]) for r in rows} == {
        ("warn", "cart c-1 is stale"),
        ("error", "payment failed"),
    }
    body = httpx.get(
        f"{server.base}/api/monitoring/logs",
        params={"service": "checkout", "level": "warn"},
        headers=READ,
    ).json()
    warning = next(i for i in body["items"] if i["level"] == "warn")
    assert warning["traceId"] == trace_id
    assert warning["metadata"]["cart.id"] == "c-1"
    assert warning["metadata"]["resource"]["deployment.environment"] == "test"


def json_span(span_id: str, name: str, **extra: object) -> dict[str, object]:
    return {
        "traceId": TRACE_ID,
        "spanId": span_id,
        "name": name,
        "kind": "SPAN_KIND_SERVER",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000500000000",
        "status": {"code": 2, "message": "boom"},
        **extra,
    }


def test_json_traces_take_hex_ids_and_report_rejected_spans(server: Server) -> None:
    request = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            json_span("eee19b7ec3c1b174", "good"),
                            json_span("not-hex-at-all!!", "bad id"),
                            json_span("0000000000000000", "zero id"),
                            json_span("0123456789abcdef", "unknown field", futureField=1),
                        ]
                    }
                ],
            }
        ]
    }
    answer = httpx.post(f"{server.base}/v1/traces", json=request, headers=INGEST)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    partial = answer.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2
    assert "span_id must be 8 bytes" in partial["errorMessage"]
    stored = SpanStore(server.state.db).trace(TRACE_ID)
    assert sorted(s.name for s in stored) == ["good", "unknown field"]
    assert stored[0].kind == "SERVER" and stored[0].status == "ERROR"
    assert stored[0].duration == pytest.approx(0.5)


def test_protobuf_traces_report_rejected_spans_in_a_protobuf_response(server: Server) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=bytes.fromhex(TRACE_ID), span_id=b"\x01" * 8, name="ok")
    spans.add(trace_id=b"\x01" * 15, span_id=b"\x02" * 8, name="short trace id")
    answer = httpx.post(
        f"{server.base}/v1/traces",
        content=request.SerializeToString(),
        headers={**INGEST, "Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 1
    assert "trace_id must be 16 bytes" in response.partial_success.error_message
    assert [s.name for s in SpanStore(server.state.db).trace(TRACE_ID)] == ["ok"]


def test_json_logs_map_severity_names_and_numbers_and_reject_bad_ids(server: Server) -> None:
    def record(body: str, severity: object, **extra: object) -> dict[str, object]:
        return {"timeUnixNano": "1700000000000000000", "severityNumber": severity,
                "body": {"stringValue": body}, **extra}  # fmt: skip

    request = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]
                },
                "scopeLogs": [
                    {
                        "logRecords": [
                            record("by name", "SEVERITY_NUMBER_FATAL", traceId=TRACE_ID),
                            record("by number", 13),
                            record("by text", 0, severityText="ERROR"),
                            record("bad trace id", 9, traceId="xyz"),
                        ]
                    }
                ],
            }
        ]
    }
    answer = httpx.post(f"{server.base}/v1/logs", json=request, headers=INGEST)
    assert answer.status_code == 200
    assert int(answer.json()["partialSuccess"]["rejectedLogRecords"]) == 1
    rows = LogStore(server.state.db).query(LogQuery(service="j"))
    assert {r["action"]: r["level"] for r in rows} == {
        "by name": "critical",
        "by number": "warn",
        "by text": "error",
    }
    assert next(r for r in rows if r["action"] == "by name")["trace_id"] == TRACE_ID
    assert rows[0]["ts"] == 1_700_000_000.0


def test_protobuf_logs_without_rejections_get_an_empty_response(server: Server) -> None:
    request = logs_service_pb2.ExportLogsServiceRequest()
    logs = request.resource_logs.add().scope_logs.add().log_records
    logs.add(time_unix_nano=1, severity_number=17).body.string_value = "x" * 600
    answer = httpx.post(
        f"{server.base}/v1/logs",
        content=request.SerializeToString(),
        headers={**INGEST, "Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == 200
    assert answer.content == b""  # an empty ExportLogsServiceResponse
    (row,) = LogStore(server.state.db).query(LogQuery(service="unknown"))
    assert len(row["action"]) == 500
    assert row["metadata"]["body"] == "x" * 600  # the whole body is kept


def test_nul_characters_in_protobuf_strings_are_stored_on_both_databases(server: Server) -> None:
    traces = trace_service_pb2.ExportTraceServiceRequest()
    resource = traces.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "n\x00ul"
    span = resource.scope_spans.add().spans.add(
        trace_id=bytes.fromhex(TRACE_ID), span_id=b"\x03" * 8, name="a\x00b"
    )
    span.attributes.add(key="k\x00").value.string_value = "v\x00"
    span.status.message = "bad\x00"
    logs = logs_service_pb2.ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=1)
    record.body.string_value = "line\x00"
    record.attributes.add(key="enduser.id").value.string_value = "u\x00"
    headers = {**INGEST, "Content-Type": "application/x-protobuf"}
    for path, message in (("/v1/traces", traces), ("/v1/logs", logs)):
        answer = httpx.post(
            f"{server.base}{path}", content=message.SerializeToString(), headers=headers
        )
        assert answer.status_code == 200, answer.text
    (stored,) = SpanStore(server.state.db).trace(TRACE_ID)
    assert (stored.name, stored.service, stored.status_message) == (
        "a\ufffdb",
        "n\ufffdul",
        "bad\ufffd",
    )
    assert stored.attributes == {"k\ufffd": "v\ufffd"}
    (row,) = LogStore(server.state.db).query(LogQuery(service="unknown"))
    assert (row["action"], row["user_id"]) == ("line\ufffd", "u\ufffd")
