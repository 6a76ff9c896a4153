"""The OTLP/HTTP logs export format and how a collector's answers are read."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from codequal.exceptions import DeliveryError
from codequal.ingest.otlp import any_value, attributes, decode_logs
from codequal.telemetry.logging import ErrorInfo, LogEntry
from codequal.telemetry.sinks.otlp import (
    ENTRY_ID,
    env_headers,
    export_request,
    logs_url,
    outcome,
    retry_after,
)
from codequal.telemetry.sinks.spool import Record, entry_ns

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
RESOURCE = {"service.version": "1.2.3", "deployment.environment": "prod"}


def record(seq: int, entry: LogEntry | None = None) -> Record:
    entry = entry or LogEntry(1_764_158_400.25 + seq, "info", "api", TRACE, f"a{seq}")
    return Record(seq, f"nonce-{seq:x}", entry_ns(entry), entry.to_dict())


def decoded(records: list[Record]) -> logs_service_pb2.ExportLogsServiceRequest:
    """The request as a collector sees it: serialised, then parsed back."""
    request, bad = export_request(records, RESOURCE)
    assert bad == []
    wire = logs_service_pb2.ExportLogsServiceRequest()
    wire.ParseFromString(request.SerializeToString())
    return wire


def only_record(records: list[Record]) -> tuple[dict[str, Any], logs_pb2.LogRecord]:
    (resource_logs,) = decoded(records).resource_logs
    (scope_logs,) = resource_logs.scope_logs
    (log,) = scope_logs.log_records
    return attributes(resource_logs.resource.attributes), log


def test_a_full_entry_maps_to_otlp_fields_and_semantic_convention_attributes() -> None:
    entry = LogEntry(
        1_764_158_400.123456,
        "error",
        "orchestrator",
        TRACE,
        "agent failed",
        user_id="u-7",
        repository_url="https://github.com/acme/shop",
        duration=1.5,
        error=ErrorInfo("TimeoutError", "took too long", "Traceback ..."),
        metadata={"spanId": SPAN, "agent": "security", "attempt": 2, "nested": {"a": [1, None]}},
    )
    resource, log = only_record([record(3, entry)])
    assert resource == {"service.name": "orchestrator", **RESOURCE}
    assert log.time_unix_nano == log.observed_time_unix_nano == 1_764_158_400_123_456_000
    assert (log.severity_number, log.severity_text) == (logs_pb2.SEVERITY_NUMBER_ERROR, "ERROR")
    assert log.body.string_value == "agent failed"
    assert log.trace_id == bytes.fromhex(TRACE) and log.span_id == bytes.fromhex(SPAN)
    assert attributes(log.attributes) == {
        ENTRY_ID: "nonce-3",
        "agent": "security",
        "attempt": 2,
        "nested": {"a": [1, None]},
        "user.id": "u-7",
        "vcs.repository.url.full": "https://github.com/acme/shop",
        "codequal.duration": 1.5,
        "exception.type": "TimeoutError",
        "exception.message": "took too long",
        "exception.stacktrace": "Traceback ...",
    }


@pytest.mark.parametrize(
    ("level", "number", "text"),
    [
        ("debug", logs_pb2.SEVERITY_NUMBER_DEBUG, "DEBUG"),
        ("info", logs_pb2.SEVERITY_NUMBER_INFO, "INFO"),
        ("warn", logs_pb2.SEVERITY_NUMBER_WARN, "WARN"),
        ("error", logs_pb2.SEVERITY_NUMBER_ERROR, "ERROR"),
        ("critical", logs_pb2.SEVERITY_NUMBER_FATAL, "CRITICAL"),
    ],
)
def test_levels_map_to_the_otel_severity_numbers(level: Any, number: int, text: str) -> None:
    _, log = only_record([record(0, LogEntry(1.0, level, "api", TRACE, "x"))])
    assert (log.severity_number, log.severity_text) == (number, text)


def test_an_id_that_is_not_otel_hex_is_kept_as_an_attribute_not_sent_as_bytes() -> None:
    entry = LogEntry(1.0, "info", "api", "not-a-trace-id", "x", metadata={"spanId": "0" * 16})
    _, log = only_record([record(0, entry)])
    assert log.trace_id == b"" and log.span_id == b""
    attrs = attributes(log.attributes)
    assert attrs["codequal.trace_id"] == "not-a-trace-id"
    assert attrs["spanId"] == "0" * 16  # all-zero is the invalid span id


def test_values_otlp_cannot_hold_natively_survive_as_text() -> None:
    entry = LogEntry(1.0, "info", "api", TRACE, "x", metadata={"big": 2**70, "flag": True})
    _, log = only_record([record(0, entry)])
    values = {kv.key: kv.value for kv in log.attributes}
    assert values["big"].string_value == str(2**70)
    assert values["flag"].WhichOneof("value") == "bool_value"
    assert any_value(values["flag"]) is True


def test_an_entry_protobuf_cannot_encode_is_set_aside_and_its_batch_still_goes() -> None:
    good, broken = record(0), record(1)
    broken.entry["action"] = "half a surrogate \ud800"
    request, bad = export_request([good, broken, record(2)], RESOURCE)
    assert bad == [broken]
    logs = request.resource_logs[0].scope_logs[0].log_records
    assert [log.body.string_value for log in logs] == ["a0", "a2"]


def test_one_resource_per_service_with_each_services_records_in_spool_order() -> None:
    records = [
        record(i, LogEntry(1.0 + i, "info", service, TRACE, f"a{i}"))
        for i, service in enumerate(["api", "worker", "api", "worker", "api"])
    ]
    request = decoded(records)
    by_service = {
        attributes(rl.resource.attributes)["service.name"]: [
            log.body.string_value for log in rl.scope_logs[0].log_records
        ]
        for rl in request.resource_logs
    }
    assert by_service == {"api": ["a0", "a2", "a4"], "worker": ["a1", "a3"]}
    assert {rl.scope_logs[0].scope.name for rl in request.resource_logs} == {"codequal"}


def test_codequal_ingest_reads_back_what_the_sink_sends() -> None:
    entry = LogEntry(
        1_764_158_400.5,
        "critical",
        "api",
        TRACE,
        "disk full",
        user_id="u-1",
        error=ErrorInfo("OSError", "no space", None),
        metadata={"path": "/data"},
    )
    request, _ = export_request([record(9, entry)], RESOURCE)
    (back,) = decode_logs(request.SerializeToString(), "protobuf", now=0.0).records
    assert (back.timestamp, back.level, back.service) == (entry.timestamp, "critical", "api")
    assert (back.trace_id, back.action, back.user_id) == (TRACE, "disk full", "u-1")
    assert back.error == ErrorInfo("OSError", "no space", None)
    assert back.metadata is not None
    assert back.metadata["path"] == "/data" and back.metadata[ENTRY_ID] == "nonce-9"


@pytest.mark.parametrize(
    "endpoint", ["http://collector:4318", "http://collector:4318/", "http://collector:4318//"]
)
def test_the_endpoint_is_a_base_url_and_the_logs_path_is_appended(endpoint: str) -> None:
    assert logs_url(endpoint) == "http://collector:4318/v1/logs"
    assert logs_url("https://gw.example/otlp/") == "https://gw.example/otlp/v1/logs"


@pytest.mark.parametrize("endpoint", ["collector:4318", "ftp://collector", "http://"])
def test_an_endpoint_that_is_not_an_http_url_is_refused_at_start(endpoint: str) -> None:
    with pytest.raises(ValueError, match="CODEQUAL_OTLP_ENDPOINT"):
        logs_url(endpoint)


def test_headers_come_from_the_standard_otel_variables_logs_first() -> None:
    both = {
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20general",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "Authorization=Bearer%20logs,X-Scope-OrgID=t1",
    }
    assert env_headers(both) == {"authorization": "Bearer logs", "x-scope-orgid": "t1"}
    general = {"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20general"}
    assert env_headers(general) == {"authorization": "Bearer general"}
    assert env_headers({}) == {}


def answer(status: int, content: bytes = b"", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=content, headers=headers)


def test_partial_success_counts_the_rejected_records_and_retries_none() -> None:
    response = logs_service_pb2.ExportLogsServiceResponse()
    response.partial_success.rejected_log_records = 3
    response.partial_success.error_message = "3 records too old"
    result = outcome(answer(200, response.SerializeToString()), sent=10, now=0.0)
    assert (result.retry, result.failed) == ([], 3)
    assert outcome(answer(200), sent=10, now=0.0).failed == 0


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_throttling_and_gateway_answers_are_retried_after_retry_after(status: int) -> None:
    with pytest.raises(DeliveryError) as caught:
        outcome(answer(status, b"busy", **{"Retry-After": "7"}), sent=1, now=0.0)
    assert not caught.value.permanent
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 500, 501])
def test_other_4xx_and_5xx_are_not_retried_as_the_otlp_spec_says(status: int) -> None:
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
        outcome(answer(status, b"no"), sent=1, now=0.0)
    assert caught.value.permanent


def test_an_error_status_message_is_read_from_the_protobuf_body() -> None:
    import importlib

    status_pb2: Any = importlib.import_module("google.rpc.status_pb2")
    body = status_pb2.Status(code=3, message="the body is not valid").SerializeToString()
    with pytest.raises(DeliveryError, match="the body is not valid"):
        outcome(answer(400, body, **{"Content-Type": "application/x-protobuf"}), 1, 0.0)


def test_retry_after_takes_seconds_or_an_http_date_against_the_given_clock() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert retry_after(later, now.timestamp()) == 30.0
    assert retry_after("Thu, 26 Nov 2026 12:00:10 -0000", now.timestamp()) == 10.0
    assert retry_after("2.5", 0.0) == 2.5
    assert retry_after("-1", 0.0) == 0.0
    assert retry_after("soon", 0.0) is None
    assert retry_after("inf", 0.0) is None
    assert retry_after(None, 0.0) is None
