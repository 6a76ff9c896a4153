"""OTLP/HTTP: ``/v1/traces``, ``/v1/logs`` (and, in :mod:`.otlp_metrics`, ``/v1/metrics``) in
protobuf or JSON, answered in kind; OTLP/gRPC hands its parsed requests to the same conversions.

JSON differs from the protobuf JSON mapping in one way that matters (OTLP specification, "JSON
Protobuf Encoding"): trace and span ids are hex, not base64. They are turned into base64 before
the standard parser runs, so both encodings then share one conversion. An item with an invalid id
is rejected alone and reported in the response's ``partial_success``; the rest is stored.
"""

from __future__ import annotations

import base64
import importlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from codequal.ingest import (
    IngestError,
    clean,
    json_safe,
    level_from_text,
    new_trace_id,
    span_wire,
)
from codequal.ingest.span_wire import bad_id
from codequal.telemetry.logging import ErrorInfo, LogEntry
from codequal.vocabulary import Level

FORMAT = "otlp"
Encoding = Literal["protobuf", "json"]
CONTENT_TYPES: dict[Encoding, str] = {
    "protobuf": "application/x-protobuf",
    "json": "application/json",
}
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
# One byte: an id no valid span has, so a bad hex id is rejected with the item, not the request.
_INVALID_ID = base64.b64encode(b"\x00").decode()
# OTLP severity numbers come in fours: TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, ...
_SEVERITIES: tuple[Level, ...] = ("debug", "debug", "info", "warn", "error", "critical")
# google.rpc.Code for the statuses we answer with (OTLP wants a Status body on errors).
RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 429: 8, 503: 14}
# googleapis-common-protos (installed with the OTLP exporter) ships no type information.
_status_pb2: Any = importlib.import_module("google.rpc.status_pb2")


@dataclass(frozen=True)
class Decoded:
    """The records to store, and how many items were rejected (with the first reason)."""

    records: list[Any]
    rejected: int = 0
    message: str = ""


def encoding_of(content_type: str | None) -> Encoding:
    media = (content_type or "").split(";")[0].strip().lower()
    for encoding, name in CONTENT_TYPES.items():
        if media == name:
            return encoding
    raise IngestError(
        415, "Content-Type must be application/x-protobuf or application/json for OTLP/HTTP"
    )


def parse(body: bytes, encoding: Encoding, message: Message, what: str) -> None:
    """Fill ``message`` from an OTLP/HTTP body; IngestError (400) when it is not one."""
    if encoding == "protobuf":
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise IngestError(400, f"the body is not a valid {what} protobuf ({exc})") from None
        return
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise IngestError(400, f"the body must be a JSON {what} object")
    try:
        json_format.ParseDict(_hex_ids_to_base64(data), message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise IngestError(400, f"the body is not a valid OTLP JSON {what} ({exc})") from None


def _hex_ids_to_base64(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _hex_id(v) if k in _ID_KEYS and isinstance(v, str) else _hex_ids_to_base64(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids_to_base64(v) for v in value]
    return value


def _hex_id(text: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(text)).decode()
    except ValueError:
        return _INVALID_ID


# -- values ----------------------------------------------------------------------------------
def any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP AnyValue as a plain Python value (bytes as base64 text)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)


def attributes(pairs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


# -- traces ----------------------------------------------------------------------------------
def decode_traces(body: bytes, encoding: Encoding) -> Decoded:
    """An ExportTraceServiceRequest as span records; invalid spans counted, not stored.
    Protobuf is read from its wire bytes (:mod:`.span_wire`); JSON through the message class."""
    if encoding == "protobuf":
        return traces_from_bytes(body)
    request = trace_service_pb2.ExportTraceServiceRequest()
    parse(body, encoding, request, "ExportTraceServiceRequest")
    return traces_from(request)


def traces_from(request: trace_service_pb2.ExportTraceServiceRequest) -> Decoded:
    """The span records of a parsed request."""
    return traces_from_bytes(request.SerializeToString())


def traces_from_bytes(raw: bytes) -> Decoded:
    """The span records of a serialised request (OTLP/HTTP protobuf and OTLP/gRPC share this);
    IngestError (400) when it is not one."""
    try:
        records, rejected, reason = span_wire.traces(raw)
    except (ValueError, IndexError, struct.error) as exc:
        raise IngestError(
            400, f"the body is not a valid ExportTraceServiceRequest protobuf ({exc})"
        ) from None
    return Decoded(records, rejected, summary(rejected, "span", reason))


def summary(rejected: int, noun: str, reason: str) -> str:
    if not rejected:
        return ""
    return f"{rejected} {noun}{'s' if rejected != 1 else ''} rejected; first: {reason}"


# -- logs ------------------------------------------------------------------------------------
def decode_logs(body: bytes, encoding: Encoding, now: float) -> Decoded:
    """An ExportLogsServiceRequest as log entries; records with invalid ids counted, not stored."""
    request = logs_service_pb2.ExportLogsServiceRequest()
    parse(body, encoding, request, "ExportLogsServiceRequest")
    return logs_from(request, now)


def logs_from(request: logs_service_pb2.ExportLogsServiceRequest, now: float) -> Decoded:
    """The log entries of a parsed request (OTLP/HTTP and OTLP/gRPC share this)."""
    records: list[LogEntry] = []
    rejected, reason = 0, ""
    for resource_logs in request.resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        service = span_wire.service_name(resource)
        resource.pop("service.name", None)
        shared = {"resource": json_safe(resource)} if resource else {}
        for scope_logs in resource_logs.scope_logs:
            if scope_logs.scope.name:
                shared = {**shared, "otel.scope.name": scope_logs.scope.name}
            for record in scope_logs.log_records:
                problem = bad_id(record.trace_id, 16, "trace_id", optional=True) or bad_id(
                    record.span_id, 8, "span_id", optional=True
                )
                if problem is None:
                    records.append(log_entry(record, service, shared, now))
                else:
                    rejected += 1
                    reason = reason or f"log record: {problem}"
    return Decoded(records, rejected, summary(rejected, "log record", reason))


def log_entry(
    record: logs_pb2.LogRecord, service: str, shared: Mapping[str, Any], now: float
) -> LogEntry:
    """One OTLP log record as our LogEntry: body is the action, attributes the metadata."""
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    body = any_value(record.body)
    action = body if isinstance(body, str) else orjson.dumps(json_safe(body)).decode()
    attrs = attributes(record.attributes)
    metadata: dict[str, Any] = {**shared, **attrs}
    if record.severity_text:
        metadata["severityText"] = record.severity_text
    if record.span_id:
        metadata["spanId"] = record.span_id.hex()
    if len(action) > 500 or not isinstance(body, str):
        metadata["body"] = body  # the action column keeps 500 characters; nothing is lost
    user = attrs.get("enduser.id") or attrs.get("user.id")
    return LogEntry(
        timestamp=nanos / 1e9 if nanos else now,
        level=_level(record.severity_number, record.severity_text),
        service=service,
        trace_id=record.trace_id.hex() or new_trace_id(),
        action=json_safe(action),
        user_id=clean(str(user))[:200] if user is not None else None,
        error=_error(attrs),
        metadata=json_safe(metadata),
    )


def _level(number: int, text: str) -> Level:
    if 1 <= number <= 24:
        return _SEVERITIES[(number - 1) // 4]
    return level_from_text(text) or "info"


def _error(attrs: Mapping[str, Any]) -> ErrorInfo | None:
    # The semantic conventions' exception.* attributes, when a log record carries an exception.
    kind, message = attrs.get("exception.type"), attrs.get("exception.message")
    if kind is None and message is None:
        return None
    stack = attrs.get("exception.stacktrace")
    return ErrorInfo(
        clean(str(kind or "Error")),
        clean(str(message or "")),
        clean(str(stack)) if stack is not None else None,
    )


# -- responses -------------------------------------------------------------------------------
Signal = Literal["traces", "logs", "metrics"]


def response_message(kind: Signal, result: Decoded) -> Message:
    """The Export*ServiceResponse, with partial_success only when something was rejected."""
    n, why = result.rejected, result.message
    if kind == "traces":
        traces = trace_service_pb2.ExportTraceServiceResponse()
        if n:
            traces.partial_success.rejected_spans, traces.partial_success.error_message = n, why
        return traces
    if kind == "logs":
        logs = logs_service_pb2.ExportLogsServiceResponse()
        if n:
            logs.partial_success.rejected_log_records, logs.partial_success.error_message = n, why
        return logs
    metrics = metrics_service_pb2.ExportMetricsServiceResponse()
    if n:
        metrics.partial_success.rejected_data_points = n
        metrics.partial_success.error_message = why
    return metrics


def encode_response(kind: Signal, encoding: Encoding, result: Decoded) -> bytes:
    """The response body in the request's encoding."""
    response = response_message(kind, result)
    if encoding == "protobuf":
        return response.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(response))


def encode_error(encoding: Encoding, error: IngestError) -> tuple[bytes, str]:
    """An error body as OTLP asks (a google.rpc.Status), in the request's encoding.

    The JSON form also carries the API's ``error`` / ``detail`` fields, so it reads like every
    other CodeQual error.
    """
    code = RPC_CODES.get(error.status, 2)
    if encoding == "protobuf":
        body: bytes = _status_pb2.Status(code=code, message=error.message).SerializeToString()
        return body, CONTENT_TYPES["protobuf"]
    payload = {
        "code": code,
        "message": error.message,
        "error": error.title,
        "detail": error.message,
    }
    return orjson.dumps(payload), CONTENT_TYPES["json"]
