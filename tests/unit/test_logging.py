"""The LogEntry schema, the structlog front end and the non-blocking fan-out to sinks."""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Sequence

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider

from codequal.telemetry import context
from codequal.telemetry.logging import (
    ErrorInfo,
    LogEntry,
    LogPipeline,
    StdlibBridge,
    build_logger,
    install_stdlib_bridge,
    uninstall_stdlib_bridge,
)
from codequal.telemetry.metrics import LOG_ENTRIES_DROPPED, REGISTRY
from codequal.telemetry.sinks.console import ConsoleSink

SCHEMA_KEYS = {
    "timestamp",
    "level",
    "service",
    "traceId",
    "userId",
    "repositoryUrl",
    "action",
    "duration",
    "error",
    "metadata",
}


class ListSink:
    def __init__(self, name: str = "list") -> None:
        self.name = name
        self.entries: list[LogEntry] = []

    def write(self, entries: Sequence[LogEntry]) -> None:
        self.entries.extend(entries)

    def close(self) -> None:
        pass


class BlockedSink(ListSink):
    """A destination that hangs until released: the caller must not notice."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()

    def write(self, entries: Sequence[LogEntry]) -> None:
        self.release.wait(10)
        super().write(entries)


def make(sink: ListSink, level: str = "info", **kw: int) -> tuple[LogPipeline, object]:
    pipeline = LogPipeline([sink], **kw)  # type: ignore[arg-type]
    pipeline.start()
    return pipeline, build_logger(pipeline, level=level, service="test")


def test_entry_has_exactly_the_schema_fields_in_camel_case() -> None:
    sink = ListSink()
    pipeline, log = make(sink)
    with context.bind(user_id="u-1", repository_url="https://github.com/o/r"):
        log.info("analysis started", duration=1.5, mode="quick")  # type: ignore[attr-defined]
    pipeline.flush()
    data = sink.entries[0].to_dict()
    assert set(data) <= SCHEMA_KEYS
    assert data["action"] == "analysis started"
    assert data["level"] == "info"
    assert data["service"] == "test"
    assert data["userId"] == "u-1"
    assert data["repositoryUrl"] == "https://github.com/o/r"
    assert data["duration"] == 1.5
    assert data["metadata"] == {"mode": "quick"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["timestamp"])
    assert re.fullmatch(r"[0-9a-f]{32}", data["traceId"])


def test_optional_fields_are_omitted_when_absent() -> None:
    entry = LogEntry(0.0, "warn", "svc", "a" * 32, "x")
    assert set(entry.to_dict()) == {"timestamp", "level", "service", "traceId", "action"}
    assert entry.to_dict()["timestamp"] == "1970-01-01T00:00:00.000Z"


def test_levels_map_to_the_five_schema_levels_and_filter_below_the_minimum() -> None:
    sink = ListSink()
    pipeline, log = make(sink, level="info")
    log.debug("hidden")  # type: ignore[attr-defined]
    log.info("i")  # type: ignore[attr-defined]
    log.warning("w")  # type: ignore[attr-defined]
    log.error("e")  # type: ignore[attr-defined]
    log.critical("c")  # type: ignore[attr-defined]
    pipeline.flush()
    assert [e.level for e in sink.entries] == ["info", "warn", "error", "critical"]


def test_lines_inside_a_span_carry_its_trace_id() -> None:
    sink = ListSink()
    pipeline, log = make(sink)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("analyze-pr") as span:
        log.info("inside")  # type: ignore[attr-defined]
        expected = format(span.get_span_context().trace_id, "032x")
    log.info("outside")  # type: ignore[attr-defined]
    pipeline.flush()
    assert sink.entries[0].trace_id == expected
    assert sink.entries[1].trace_id != expected


def test_bound_trace_id_is_used_when_no_span_is_active() -> None:
    sink = ListSink()
    pipeline, log = make(sink)
    with context.bind(trace_id="f" * 32, analysis_id="an-7"):
        log.info("queued")  # type: ignore[attr-defined]
    pipeline.flush()
    assert sink.entries[0].trace_id == "f" * 32
    assert sink.entries[0].metadata == {"analysisId": "an-7"}


def test_exception_becomes_the_error_field_with_type_message_and_stack() -> None:
    sink = ListSink()
    pipeline, log = make(sink)
    try:
        raise ValueError("bad ref")
    except ValueError as exc:
        log.error("clone failed", error=exc)  # type: ignore[attr-defined]
    pipeline.flush()
    error = sink.entries[0].error
    assert isinstance(error, ErrorInfo)
    assert (error.type, error.message) == ("ValueError", "bad ref")
    assert error.stack is not None and "raise ValueError" in error.stack


def test_full_queue_drops_oldest_counts_drops_and_never_blocks_the_caller() -> None:
    sink = BlockedSink("blocked-test")
    pipeline, log = make(sink, max_queue=10, batch_size=1000)
    before = (
        REGISTRY.get_sample_value("codequal_log_entries_dropped_total", {"sink": "blocked-test"})
        or 0.0
    )
    for i in range(25):
        log.info(f"line {i}")  # type: ignore[attr-defined]  # returns at once although the sink hangs
    after = REGISTRY.get_sample_value(
        "codequal_log_entries_dropped_total", {"sink": "blocked-test"}
    )
    sink.release.set()
    pipeline.flush()
    assert after is not None and after - before == 15
    assert [e.action for e in sink.entries] == [f"line {i}" for i in range(15, 25)]
    assert LOG_ENTRIES_DROPPED.labels(sink="blocked-test")._value.get() == after


def test_a_failing_sink_does_not_stop_the_others() -> None:
    class Broken(ListSink):
        def write(self, entries: Sequence[LogEntry]) -> None:
            raise OSError("disk full")

    good = ListSink("good")
    pipeline = LogPipeline([Broken("broken"), good])  # type: ignore[list-item]
    pipeline.start()
    log = build_logger(pipeline, level="info", service="t")
    before = REGISTRY.get_sample_value("codequal_sink_errors_total", {"sink": "broken"}) or 0.0
    log.info("still delivered")
    pipeline.flush()
    assert [e.action for e in good.entries] == ["still delivered"]
    assert REGISTRY.get_sample_value("codequal_sink_errors_total", {"sink": "broken"}) == before + 1


def test_critical_entries_reach_the_alert_hook_subscribers() -> None:
    sink = ListSink()
    pipeline, log = make(sink)
    seen: list[str] = []
    pipeline.alert_hook.subscribe(lambda entries: seen.extend(e.action for e in entries))
    log.error("not an alert")  # type: ignore[attr-defined]
    log.critical("deepwiki workspace lost")  # type: ignore[attr-defined]
    pipeline.flush()
    assert seen == ["deepwiki workspace lost"]


def test_stdlib_records_are_bridged_into_the_pipeline() -> None:
    sink = ListSink()
    pipeline, log = make(sink)
    install_stdlib_bridge(StdlibBridge(log, "info"))  # type: ignore[arg-type]
    try:
        logging.getLogger("some.library").warning("retrying %s", "request")
        logging.getLogger("some.library").debug("not shown")
    finally:
        uninstall_stdlib_bridge()
    pipeline.flush()
    assert [(e.level, e.action) for e in sink.entries] == [("warn", "retrying request")]
    assert sink.entries[0].metadata == {"logger": "some.library"}


def test_console_sink_writes_json_lines_when_not_a_terminal() -> None:
    stream = io.BytesIO()
    sink = ConsoleSink("auto", stream)
    sink.write([LogEntry(1.0, "info", "svc", "a" * 32, "hello", metadata={"k": 1})])
    line = orjson.loads(stream.getvalue().splitlines()[0])
    assert line == {
        "timestamp": "1970-01-01T00:00:01.000Z",
        "level": "info",
        "service": "svc",
        "traceId": "a" * 32,
        "action": "hello",
        "metadata": {"k": 1},
    }


def test_console_format_is_readable_with_level_action_and_fields() -> None:
    stream = io.BytesIO()
    ConsoleSink("console", stream).write(
        [LogEntry(1.0, "error", "svc", "b" * 32, "clone failed", duration=0.5)]
    )
    text = stream.getvalue().decode()
    assert "ERROR" in text and "clone failed" in text and "duration=0.500s" in text


@pytest.mark.parametrize("level", ["debug", "info", "warn", "error", "critical"])
def test_every_schema_level_is_accepted_by_build_logger(level: str) -> None:
    pipeline = LogPipeline([])
    assert build_logger(pipeline, level=level, service="s") is not None
