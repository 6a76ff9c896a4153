"""Tracing: span shape, current ids, W3C traceparent, OTLP/HTTP export to a real server."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from codequal.storage import open_database
from codequal.telemetry.context import current_span_id, current_trace_id
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.stores.spans import SpanRecord, SpanStore
from codequal.telemetry.tracing import (
    StoreSpanExporter,
    Tracing,
    extract_context,
    inject,
    setup_tracing,
    span_record,
)

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def make_tracing(**kwargs: object) -> Tracing:
    options: dict[str, object] = {
        "service": "codequal-test",
        "version": "1.2.3",
        "environment": "test",
        "span_store": None,
        "otlp_endpoint": None,
    }
    options.update(kwargs)
    return setup_tracing(**options)  # type: ignore[arg-type]


@pytest.fixture
def traced() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    """A Tracing whose finished spans are also kept in memory, synchronously."""
    tracing = make_tracing()
    memory = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(memory))
    yield tracing, memory
    tracing.shutdown()


def records(memory: InMemorySpanExporter) -> dict[str, SpanRecord]:
    return {s.name: span_record(s) for s in memory.get_finished_spans()}


def test_span_records_carry_hex_ids_parent_links_and_epoch_timings(
    traced: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, memory = traced
    before = time.time()
    with tracing.span("analysis", repository="r") as root, tracing.span("agent", agent="sec"):
        pass
    after = time.time()

    spans = records(memory)
    root_id = f"{root.get_span_context().span_id:016x}"
    assert spans["analysis"].parent_span_id is None
    assert spans["agent"].parent_span_id == root_id
    assert spans["agent"].trace_id == spans["analysis"].trace_id
    assert len(spans["agent"].trace_id) == 32 and len(spans["agent"].span_id) == 16
    assert spans["agent"].attributes == {"agent": "sec"}
    assert spans["analysis"].service == "codequal-test"
    assert spans["analysis"].kind == "INTERNAL"
    assert spans["analysis"].status == "UNSET"
    assert before <= spans["analysis"].start_ts <= spans["agent"].start_ts <= after
    # Durations come from the nanosecond clock, so they agree with end - start to float noise.
    assert spans["analysis"].duration == pytest.approx(
        spans["analysis"].end_ts - spans["analysis"].start_ts, abs=1e-6
    )


def test_exception_leaving_a_span_sets_error_status_and_propagates(
    traced: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, memory = traced
    with pytest.raises(ValueError, match="bad diff"), tracing.span("parse"):
        raise ValueError("bad diff")

    record = records(memory)["parse"]
    assert record.status == "ERROR"
    assert record.status_message == "ValueError: bad diff"
    [event] = record.events
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"


def test_current_ids_follow_the_active_span(
    traced: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, _ = traced
    assert current_trace_id() is None and current_span_id() is None
    with tracing.span("outer") as outer:
        outer_ctx = outer.get_span_context()
        assert current_trace_id() == f"{outer_ctx.trace_id:032x}"
        assert current_span_id() == f"{outer_ctx.span_id:016x}"
        with tracing.span("inner") as inner:
            assert current_span_id() == f"{inner.get_span_context().span_id:016x}"
            assert current_trace_id() == f"{outer_ctx.trace_id:032x}"
        assert current_span_id() == f"{outer_ctx.span_id:016x}"
    assert current_trace_id() is None


@pytest.mark.parametrize("header", ["traceparent", "Traceparent", "TRACEPARENT"])
def test_traceparent_extraction_yields_the_callers_trace_and_parent_span(
    traced: tuple[Tracing, InMemorySpanExporter], header: str
) -> None:
    tracing, memory = traced
    headers = {header: f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    with tracing.tracer.start_as_current_span(
        "HTTP GET", context=extract_context(headers), kind=SpanKind.SERVER
    ):
        assert current_trace_id() == CALLER_TRACE

    record = records(memory)["HTTP GET"]
    assert record.trace_id == CALLER_TRACE
    assert record.parent_span_id == CALLER_SPAN
    assert record.kind == "SERVER"


@pytest.mark.parametrize("headers", [{}, {"traceparent": "not-a-traceparent"}])
def test_missing_or_malformed_traceparent_starts_a_new_trace(
    traced: tuple[Tracing, InMemorySpanExporter], headers: dict[str, str]
) -> None:
    tracing, memory = traced
    with tracing.tracer.start_as_current_span("HTTP GET", context=extract_context(headers)):
        pass

    record = records(memory)["HTTP GET"]
    assert record.parent_span_id is None
    assert record.trace_id != CALLER_TRACE


def test_inject_writes_the_current_span_as_traceparent(
    traced: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, _ = traced
    carrier: dict[str, str] = {}
    with tracing.span("client call"):
        inject(carrier)
        expected = f"00-{current_trace_id()}-{current_span_id()}-"
    assert carrier["traceparent"].startswith(expected)
    flags = int(carrier["traceparent"].rsplit("-", 1)[1], 16)
    assert flags & 0x01  # sampled


def test_setup_tracing_leaves_the_global_provider_alone_unless_asked() -> None:
    tracing = make_tracing()
    try:
        assert trace.get_tracer_provider() is not tracing.provider
    finally:
        tracing.shutdown()


def test_store_exporter_counts_a_failed_batch_instead_of_raising(
    traced: tuple[Tracing, InMemorySpanExporter], tmp_path: Path
) -> None:
    tracing, memory = traced
    with tracing.span("lost"):
        pass
    unmigrated = open_database(f"sqlite:///{tmp_path / 'empty.db'}")  # no spans table
    errors = "codequal_sink_errors_total"
    before = REGISTRY.get_sample_value(errors, {"sink": "span_store"}) or 0.0
    try:
        result = StoreSpanExporter(SpanStore(unmigrated)).export(memory.get_finished_spans())
    finally:
        unmigrated.dispose()
    assert result is SpanExportResult.FAILURE
    assert REGISTRY.get_sample_value(errors, {"sink": "span_store"}) == before + 1


# -- OTLP/HTTP against a real HTTP server ----------------------------------------------------


@dataclass
class Collector:
    """What a minimal OTLP/HTTP receiver got: request paths, headers and decoded bodies."""

    paths: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    hang: threading.Event | None = None  # when set: hold every request until released
    url: str = ""


def _handler(collector: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if collector.hang is not None:
                collector.hang.wait(10)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            collector.paths.append(self.path)
            collector.content_types.append(self.headers["Content-Type"])
            collector.requests.append(request)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            collector.received.set()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def collector() -> Iterator[Collector]:
    state = Collector()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield state
    finally:
        if state.hang is not None:
            state.hang.set()
        server.shutdown()
        server.server_close()


def test_spans_are_exported_over_otlp_http_to_the_collector(collector: Collector) -> None:
    tracing = make_tracing(otlp_endpoint=collector.url)  # trailing slash on purpose
    with tracing.span("deepwiki.clone", repository="acme/api") as span:
        trace_id = span.get_span_context().trace_id.to_bytes(16, "big")
    assert tracing.flush(timeout=10)
    tracing.shutdown()

    assert collector.paths == ["/v1/traces"]
    assert collector.content_types == ["application/x-protobuf"]
    [resource_spans] = collector.requests[0].resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "codequal-test"
    assert resource["service.version"] == "1.2.3"
    assert resource["deployment.environment"] == "test"
    [sent] = resource_spans.scope_spans[0].spans
    assert sent.name == "deepwiki.clone"
    assert sent.trace_id == trace_id


def test_shutdown_keeps_its_deadline_when_the_collector_does_not_answer(
    collector: Collector,
) -> None:
    collector.hang = threading.Event()
    tracing = make_tracing(otlp_endpoint=collector.url)
    with tracing.span("stuck"):
        pass
    started = time.monotonic()
    finished = tracing.shutdown(timeout=0.5)
    elapsed = time.monotonic() - started

    assert finished is False
    assert elapsed < 2.0
