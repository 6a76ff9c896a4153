"""The OTLP/HTTP logs sink against a collector on loopback that decodes what arrives.

The collector parses every request with opentelemetry-proto and checks the wire format (path,
content type, gzip, resource, severity, ids); it can be down, answer a scripted status, stall
past the client's timeout, report a partial success or refuse large bodies with 413. Tests
that only need the sink's decisions drive :meth:`deliver_batch` on the test thread with a
recording ``sleep``, so no time is spent waiting for backoff.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from codequal.config import load_settings
from codequal.ingest.otlp import attributes
from codequal.retry import Backoff
from codequal.runtime.wiring import setup_telemetry
from codequal.telemetry.logging import LogPipeline
from codequal.telemetry.metrics import SINK_FAILED, SINK_SENT
from codequal.telemetry.sinks.otlp import ENTRY_ID, OtlpLogSink

from ..conftest import TEST_JWT_SECRET
from ..helpers import LoopbackReceiver, eventually
from .test_sink_delivery import FAST, entries, free_port, p99, timed_emits

PROTOBUF = "application/x-protobuf"
SEVERITIES = {"debug": 5, "info": 9, "warn": 13, "error": 17, "critical": 21}


class Collector(LoopbackReceiver):
    """An OTLP/HTTP logs receiver: arrivals as (uid, body) in order, plus a script of answers."""

    content_type = PROTOBUF

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.script: deque[str] = deque()
        self.arrivals: list[tuple[str, str]] = []
        self.resources: list[dict[str, Any]] = []
        self.stalled_ids: set[str] = set()
        self.wire_errors: list[str] = []
        self.max_records: int | None = None  # 413 above this many records in one request
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        if path == "/v1/traces":  # the span exporter shares the endpoint; not under test here
            return 200, b"", {}
        with self._lock:
            self.headers.append(headers)
            mode = self.script.popleft() if self.script else "ok"
        if mode in ("429", "500", "502", "503", "400"):
            return int(mode), b"scripted", {"Retry-After": "1"}
        try:
            items = self.parse(path, headers, body)
        except (AssertionError, ValueError, KeyError) as exc:
            self.wire_errors.append(repr(exc))
            return 400, b"bad wire format", {}
        if self.max_records is not None and len(items) > self.max_records:
            return 413, b"too large", {}
        with self._lock:
            self.arrivals += items
        response = logs_service_pb2.ExportLogsServiceResponse()
        if mode == "timeout":  # stored, but the answer comes after the client gave up
            self.stalled_ids |= {uid for uid, _ in items}
            time.sleep(0.5)
            return 0, b"", {}
        if mode.startswith("reject"):
            response.partial_success.rejected_log_records = int(mode[6:])
            response.partial_success.error_message = "scripted rejection"
        return 200, response.SerializeToString(), {}

    def parse(self, path: str, headers: dict[str, str], body: bytes) -> list[tuple[str, str]]:
        assert path == "/v1/logs", path
        assert headers["Content-Type"] == PROTOBUF, headers
        assert headers["Content-Encoding"] == "gzip", headers
        request = logs_service_pb2.ExportLogsServiceRequest()
        request.ParseFromString(gzip.decompress(body))
        items = []
        for resource_logs in request.resource_logs:
            resource = attributes(resource_logs.resource.attributes)
            assert resource["service.name"], resource
            self.resources.append(resource)
            for scope_logs in resource_logs.scope_logs:
                assert scope_logs.scope.name == "codequal"
                for log in scope_logs.log_records:
                    attrs = attributes(log.attributes)
                    assert log.time_unix_nano > 1_600_000_000 * 10**9, log.time_unix_nano
                    assert log.severity_number == SEVERITIES[log.severity_text.lower()]
                    # entries() gives n0 the all-zero trace id, which OTLP calls invalid
                    assert len(log.trace_id) == 16 or "codequal.trace_id" in attrs, attrs
                    items.append((str(attrs[ENTRY_ID]), log.body.string_value))
        return items

    def first_arrivals(self) -> list[str]:
        """Bodies in first-arrival order, each entry id once."""
        seen: set[str] = set()
        out = []
        for uid, body in list(self.arrivals):
            if uid not in seen:
                seen.add(uid)
                out.append(body)
        return out


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector(free_port())
    yield receiver
    receiver.stop()


def make_sink(collector: Collector, data_dir: Path, **kw: Any) -> OtlpLogSink:
    kw.setdefault("backoff", FAST)
    return OtlpLogSink(collector.url, data_dir, {"service.version": "t"}, headers={}, **kw)


def test_down_collector_under_load_gets_all_10000_in_order_without_slowing_callers(
    collector: Collector, tmp_path: Path
) -> None:
    sink = make_sink(collector, tmp_path)
    pipeline = LogPipeline([sink], max_queue=20_000, flush_interval=0.05)
    pipeline.start()
    try:
        down = timed_emits(pipeline, entries(10_000))
        assert pipeline.flush(10.0)
        assert sink.spool.depth() == 10_000
        assert sink.health() == "degraded"
        collector.start()
        eventually(lambda: len(set(collector.arrivals)) >= 10_000)
        up = timed_emits(pipeline, entries(2_000, start=10_000))
        eventually(lambda: len(set(collector.arrivals)) >= 12_000)
    finally:
        pipeline.close(5.0)
    assert collector.first_arrivals() == [f"n{i}" for i in range(12_000)]
    assert collector.wire_errors == []
    assert p99(down) < 0.005, f"p99 emit while down {p99(down) * 1e3:.2f} ms"
    assert p99(down) < max(0.001, 5 * p99(up)), (p99(down), p99(up))
    assert sink.health() == "ok"


@pytest.mark.parametrize("answers", [["503"] * 3, ["429", "502"], ["504"], ["timeout"]])
def test_retryable_answers_converge_in_order_with_no_duplicates_beyond_stalled_ids(
    collector: Collector, tmp_path: Path, answers: list[str]
) -> None:
    collector.script.extend(answers)
    collector.start()
    sink = make_sink(collector, tmp_path, timeout=0.2, batch_size=20)
    sink.write(entries(50))
    try:
        eventually(lambda: len(set(collector.arrivals)) >= 50 and not sink.spool.depth())
    finally:
        sink.shutdown(2.0)
    assert collector.first_arrivals() == [f"n{i}" for i in range(50)]
    ids = [uid for uid, _ in collector.arrivals]
    assert {i for i in ids if ids.count(i) > 1} <= collector.stalled_ids
    assert collector.wire_errors == []


def test_retry_after_from_the_collector_is_the_wait_before_the_next_attempt(
    collector: Collector, tmp_path: Path
) -> None:
    collector.script.extend(["503", "429"])  # both answer Retry-After: 1
    collector.start()
    waits: list[float] = []
    sink = make_sink(
        collector, tmp_path, backoff=Backoff(base=0.01), sleep=waits.append, start=False
    )
    sink.write(entries(5))
    assert sink.deliver_batch()
    sink.shutdown(1.0)
    assert waits == [1.0, 1.0]
    assert collector.first_arrivals() == [f"n{i}" for i in range(5)]


@pytest.mark.parametrize("status", ["400", "500"])
def test_a_non_retryable_answer_drops_the_batch_counts_it_and_delivery_goes_on(
    collector: Collector, tmp_path: Path, status: str
) -> None:
    collector.script.append(status)
    collector.start()
    failed = SINK_FAILED.labels(sink="otlp")._value.get()
    waits: list[float] = []
    sink = make_sink(collector, tmp_path, batch_size=10, sleep=waits.append, start=False)
    sink.write(entries(15))
    assert sink.deliver_batch() and sink.deliver_batch()
    sink.shutdown(1.0)
    assert waits == []  # the OTLP spec: other 4xx/5xx MUST NOT be retried
    assert collector.first_arrivals() == [f"n{i}" for i in range(10, 15)]
    assert SINK_FAILED.labels(sink="otlp")._value.get() - failed == 10
    assert sink.spool.depth() == 0


def test_partial_success_counts_rejected_records_as_failed_and_sends_nothing_again(
    collector: Collector, tmp_path: Path
) -> None:
    collector.script.append("reject3")
    collector.start()
    failed = SINK_FAILED.labels(sink="otlp")._value.get()
    sent = SINK_SENT.labels(sink="otlp")._value.get()
    sink = make_sink(collector, tmp_path, start=False)
    sink.write(entries(10))
    assert sink.deliver_batch()
    sink.shutdown(1.0)
    assert len(collector.arrivals) == 10 and len(collector.headers) == 1
    assert SINK_FAILED.labels(sink="otlp")._value.get() - failed == 3
    assert SINK_SENT.labels(sink="otlp")._value.get() - sent == 7


def test_a_413_halves_the_batch_until_each_part_fits_and_keeps_the_order(
    collector: Collector, tmp_path: Path
) -> None:
    collector.max_records = 3
    collector.start()
    sink = make_sink(collector, tmp_path, batch_size=10, start=False)
    sink.write(entries(10))
    assert sink.deliver_batch()
    sink.shutdown(1.0)
    assert collector.first_arrivals() == [f"n{i}" for i in range(10)]
    assert sink.spool.depth() == 0


def test_codequal_otlp_endpoint_sends_logs_with_resource_and_otel_headers(
    collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20s3cret")
    collector.start()
    settings = load_settings(
        data_dir=tmp_path,
        jwt_secret=TEST_JWT_SECRET,
        otlp_endpoint=collector.url + "/",
        environment="staging",
        service_name="codequal-a",
    )
    telemetry = setup_telemetry(settings, None, bridge_stdlib=False)
    try:
        sink = next(s for s in telemetry.logs.sinks if isinstance(s, OtlpLogSink))
        assert sink.name == "otlp"
        telemetry.logger("orchestrator").warning("analysis slow", duration=12.5)
        assert telemetry.logs.flush(5.0)
        eventually(lambda: "analysis slow" in collector.first_arrivals())
    finally:
        telemetry.shutdown(5.0)
    assert collector.wire_errors == []
    resource = collector.resources[0]
    assert resource["service.name"] == "orchestrator"
    assert resource["deployment.environment"] == "staging"
    assert "service.version" in resource
    sent = {name.lower(): value for name, value in collector.headers[0].items()}
    assert sent["authorization"] == "Bearer s3cret"
