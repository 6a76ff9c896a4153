"""OTLP decoding: JSON and protobuf give the same records; severities; responses and errors."""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from codequal.ingest import IngestError
from codequal.ingest.otlp import (
    Decoded,
    any_value,
    decode_logs,
    decode_traces,
    encode_error,
    encode_response,
    encoding_of,
)

TRACE, SPAN, PARENT = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173"
NOW = 1_800_000_000.0


def traces_request() -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "api"
    scope = resource.scope_spans.add()
    scope.scope.name = "shop.http"
    span = scope.spans.add(
        trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(SPAN),
        parent_span_id=bytes.fromhex(PARENT), name="GET /", kind=3,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_250_000_000,
    )  # fmt: skip
    span.status.code, span.status.message = 2, "timeout"
    span.attributes.add(key="http.status_code").value.int_value = 504
    span.events.add(name="retry", time_unix_nano=1_700_000_000_100_000_000)
    return request


def as_otlp_json(message: Any) -> bytes:
    """The OTLP JSON encoding: the protobuf JSON mapping with hex instead of base64 ids."""
    data = json_format.MessageToDict(message)
    for resource in data.get("resourceSpans", []):
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(data)


def test_json_with_hex_ids_and_protobuf_decode_to_the_same_spans() -> None:
    request = traces_request()
    from_pb = decode_traces(request.SerializeToString(), "protobuf")
    from_json = decode_traces(as_otlp_json(request), "json")
    assert from_pb == from_json
    (span,) = from_pb.records
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE, SPAN, PARENT)
    assert (span.kind, span.status, span.status_message, span.service) == (
        "CLIENT", "ERROR", "timeout", "api",
    )  # fmt: skip
    assert span.duration == pytest.approx(0.25)
    assert span.attributes == {"http.status_code": 504, "otel.scope.name": "shop.http"}
    assert span.events == [{"name": "retry", "timestamp": 1_700_000_000.1, "attributes": {}}]


def test_enum_names_and_numbers_both_parse_in_json() -> None:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE, "spanId": SPAN, "kind": "SPAN_KIND_PRODUCER", "status": {"code": 1}},
        {"traceId": TRACE, "spanId": PARENT, "kind": 5, "status": {"code": "STATUS_CODE_ERROR"}},
    ]}]}]}  # fmt: skip
    first, second = decode_traces(orjson.dumps(body), "json").records
    assert (first.kind, first.status, first.service) == ("PRODUCER", "OK", "unknown")
    assert (second.kind, second.status) == ("CONSUMER", "ERROR")


@pytest.mark.parametrize(
    ("body", "encoding", "words"),
    [
        (b"\xff\x00garbage", "protobuf", "not a valid ExportTraceServiceRequest protobuf"),
        (b"{nope", "json", "not valid JSON"),
        (b"[]", "json", "must be a JSON"),
        (b'{"resourceSpans": 5}', "json", "not a valid OTLP JSON"),
    ],
)
def test_undecodable_bodies_are_400(body: bytes, encoding: Any, words: str) -> None:
    with pytest.raises(IngestError) as caught:
        decode_traces(body, encoding)
    assert caught.value.status == 400 and words in caught.value.message


def test_any_value_covers_every_kind() -> None:
    value = common_pb2.AnyValue()
    value.array_value.values.add().string_value = "a"
    value.array_value.values.add().kvlist_value.values.add(key="k").value.bool_value = True
    value.array_value.values.add().bytes_value = b"\x00\x01"
    value.array_value.values.add().double_value = math.inf
    value.array_value.values.add()  # empty
    assert any_value(value) == ["a", {"k": True}, "AAE=", math.inf, None]


@pytest.mark.parametrize(
    ("number", "text", "level"),
    [(1, "", "debug"), (8, "", "debug"), (9, "", "info"), (13, "", "warn"), (17, "", "error"),
     (21, "", "critical"), (24, "", "critical"), (0, "Warning", "warn"), (0, "", "info"),
     (0, "chatty", "info")],
)  # fmt: skip
def test_severity_numbers_and_texts_map_to_our_levels(number: int, text: str, level: str) -> None:
    request = logs_service_pb2.ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.severity_number, record.severity_text = number, text  # type: ignore[assignment]
    (entry,) = decode_logs(request.SerializeToString(), "protobuf", NOW).records
    assert entry.level == level


def test_a_log_record_keeps_its_context_as_metadata() -> None:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "worker"
    resource.resource.attributes.add(key="host.name").value.string_value = "h1"
    record = resource.scope_logs.add().log_records.add(
        observed_time_unix_nano=1_700_000_000_000_000_000, span_id=bytes.fromhex(SPAN),
        trace_id=bytes.fromhex(TRACE), severity_text="E",
    )  # fmt: skip
    record.body.kvlist_value.values.add(key="msg").value.string_value = "structured"
    for key, text in (("exception.type", "OSError"), ("exception.message", "disk"),
                      ("enduser.id", "u9")):  # fmt: skip
        record.attributes.add(key=key).value.string_value = text
    (entry,) = decode_logs(request.SerializeToString(), "protobuf", NOW).records
    assert (entry.service, entry.trace_id, entry.timestamp) == ("worker", TRACE, 1_700_000_000.0)
    assert entry.action == '{"msg":"structured"}'
    assert entry.user_id == "u9"
    assert entry.error is not None and (entry.error.type, entry.error.message) == (
        "OSError",
        "disk",
    )
    assert entry.metadata is not None
    assert entry.metadata["resource"] == {"host.name": "h1"}
    assert (entry.metadata["spanId"], entry.metadata["severityText"]) == (SPAN, "E")
    assert entry.metadata["body"] == {"msg": "structured"}


def test_a_log_without_a_time_gets_the_arrival_time_and_a_trace_of_its_own() -> None:
    request = logs_service_pb2.ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "x"
    (entry,) = decode_logs(request.SerializeToString(), "protobuf", NOW).records
    assert entry.timestamp == NOW and len(entry.trace_id) == 32


def test_responses_match_the_request_encoding() -> None:
    clean = encode_response("traces", "json", Decoded([]))
    assert orjson.loads(clean) == {}
    partial = encode_response("logs", "protobuf", Decoded([], 2, "2 rejected"))
    decoded = logs_service_pb2.ExportLogsServiceResponse.FromString(partial)
    partial_success = decoded.partial_success
    assert partial_success.rejected_log_records == 2
    assert partial_success.error_message == "2 rejected"


def test_errors_are_google_rpc_status_in_protobuf_and_json() -> None:
    from google.rpc import status_pb2  # type: ignore[import-untyped]

    error = IngestError(413, "too big")
    body, media = encode_error("protobuf", error)
    assert media == "application/x-protobuf"
    status = status_pb2.Status.FromString(body)
    assert (status.code, status.message) == (8, "too big")
    body, media = encode_error("json", error)
    assert orjson.loads(body) == {
        "code": 8, "message": "too big", "error": "request too large", "detail": "too big",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [("application/x-protobuf", "protobuf"), ("application/json; charset=utf-8", "json"),
     ("Application/JSON", "json")],
)  # fmt: skip
def test_content_types_choose_the_encoding(content_type: str, encoding: str) -> None:
    assert encoding_of(content_type) == encoding


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/grpc"])
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(IngestError) as caught:
        encoding_of(content_type)
    assert caught.value.status == 415
