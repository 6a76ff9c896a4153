"""OTLP/HTTP logs sink: ``ExportLogsServiceRequest`` protobuf, gzip, through the delivering spool.

The endpoint is a base URL, as ``CODEQUAL_OTLP_ENDPOINT`` is for traces
(:func:`codequal.telemetry.tracing.setup_tracing`): the signal path is appended, so
``http://collector:4318`` and ``http://collector:4318/`` both post to
``http://collector:4318/v1/logs`` (the OTLP exporter specification's rule for
``OTEL_EXPORTER_OTLP_ENDPOINT``). Headers come from the standard OpenTelemetry variables, as
the OpenTelemetry span exporter reads them for traces, so one setting authenticates both.

Answers follow the OTLP/HTTP specification: 429, 502, 503 and 504 (and network errors) are
retried, honouring ``Retry-After``; every other 4xx or 5xx rejects the batch for good, and it is
counted as failed. A 2xx with ``partial_success.rejected_log_records`` counts that many as failed
and is not retried. A 413 halves the batch until it fits. Each record carries its spool id as
``log.record.uid`` (the semantic conventions' duplicate marker) so at-least-once delivery stays
detectable downstream.
"""

from __future__ import annotations

import gzip
import importlib
import math
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.util.re import parse_env_headers

from codequal import __version__
from codequal.exceptions import DeliveryError
from codequal.redaction import redact_url
from codequal.telemetry.sinks.context import SinkContext
from codequal.telemetry.sinks.spool import DeliveringSink, Record, SendResult

LOGS_PATH = "/v1/logs"
# Read when no headers are given, most specific first, as the OpenTelemetry exporters do.
OTEL_EXPORTER_OTLP_LOGS_HEADERS = "OTEL_EXPORTER_OTLP_LOGS_HEADERS"
OTEL_EXPORTER_OTLP_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
PROTOBUF = "application/x-protobuf"
# OTLP/HTTP specification, "Failures": only these are retryable; other 4xx/5xx MUST NOT be.
RETRYABLE = frozenset({429, 502, 503, 504})
GZIP_LEVEL = 6  # gzip's default; level 9 costs twice the CPU for a few percent
SCOPE_NAME = "codequal"  # the tracer's instrumentation name too
ENTRY_ID = "log.record.uid"
# Our levels to the OTel severity numbers (the first of each range: DEBUG 5, INFO 9, ...).
SEVERITY: dict[str, tuple[int, str]] = {
    "debug": (5, "DEBUG"),
    "info": (9, "INFO"),
    "warn": (13, "WARN"),
    "error": (17, "ERROR"),
    "critical": (21, "CRITICAL"),
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# googleapis-common-protos (installed with the OTLP exporter) ships no type information.
_status_pb2: Any = importlib.import_module("google.rpc.status_pb2")


def signal_url(endpoint: str, path: str) -> str:
    """``<endpoint><path>`` (``/v1/logs``, ``/v1/traces``); the endpoint must be an http(s)
    URL (checked at start)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"CODEQUAL_OTLP_ENDPOINT must be the collector's base http(s) URL, such as "
            f"http://otel-collector:4318, got {endpoint!r}"
        )
    return endpoint.rstrip("/") + path


def logs_url(endpoint: str) -> str:
    return signal_url(endpoint, LOGS_PATH)


def signal_headers(specific: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Headers from the signal's own variable (``specific``) or else
    ``OTEL_EXPORTER_OTLP_HEADERS``, as the OpenTelemetry exporters read them."""
    for name in (specific, OTEL_EXPORTER_OTLP_HEADERS):
        value = environ.get(name)
        if value:
            return dict(parse_env_headers(value, liberal=True))
    return {}


def env_headers(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Headers from ``OTEL_EXPORTER_OTLP_LOGS_HEADERS`` or else ``OTEL_EXPORTER_OTLP_HEADERS``."""
    return signal_headers(OTEL_EXPORTER_OTLP_LOGS_HEADERS, environ)


# -- encoding ---------------------------------------------------------------------------------
def fill_value(out: common_pb2.AnyValue, value: Any) -> None:
    """Set ``out`` to ``value`` (JSON types; None stays the empty AnyValue, OTLP's null)."""
    if isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            out.int_value = value
        else:
            out.string_value = str(value)  # an int64 cannot hold it; the digits survive
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, Mapping):
        out.kvlist_value.SetInParent()
        _fill_pairs(out.kvlist_value.values, value)
    elif isinstance(value, list | tuple):
        out.array_value.SetInParent()
        for item in value:
            fill_value(out.array_value.values.add(), item)
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif value is not None:
        out.string_value = str(value)


def _fill_pairs(pairs: Any, mapping: Mapping[str, Any]) -> None:
    for key, value in mapping.items():
        kv = pairs.add()
        kv.key = str(key)
        fill_value(kv.value, value)


def _id_bytes(value: Any, size: int) -> bytes | None:
    """The bytes of a hex id of ``size`` bytes, or None when it is not a valid one."""
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if any(raw) else None


def _attributes(entry: Mapping[str, Any], record_id: str) -> dict[str, Any]:
    """The record's attributes: the entry's metadata, then the schema's optional fields."""
    attrs: dict[str, Any] = dict(entry.get("metadata") or {})
    attrs[ENTRY_ID] = record_id
    if "userId" in entry:
        attrs["user.id"] = entry["userId"]
    if "repositoryUrl" in entry:
        attrs["vcs.repository.url.full"] = entry["repositoryUrl"]
    if "duration" in entry:
        attrs["codequal.duration"] = entry["duration"]  # seconds
    error = entry.get("error")
    if isinstance(error, Mapping):
        attrs["exception.type"] = error.get("type", "")
        attrs["exception.message"] = error.get("message", "")
        if error.get("stack") is not None:
            attrs["exception.stacktrace"] = error["stack"]
    return attrs


def log_record(out: logs_pb2.LogRecord, record: Record) -> None:
    """Fill ``out`` from one spooled entry (``LogEntry.to_dict()`` plus its id and time)."""
    entry = record.entry
    number, text = SEVERITY.get(str(entry.get("level")), SEVERITY["info"])
    out.time_unix_nano = out.observed_time_unix_nano = record.ns
    out.severity_number = number  # type: ignore[assignment]  # an int is a valid enum value
    out.severity_text = text
    out.body.string_value = str(entry.get("action", ""))
    attrs = _attributes(entry, record.id)
    trace_id = _id_bytes(entry.get("traceId"), 16)
    if trace_id is not None:
        out.trace_id = trace_id
    elif entry.get("traceId"):
        attrs["codequal.trace_id"] = entry["traceId"]  # not an OTel id: kept, not lost
    span_id = _id_bytes(attrs.get("spanId"), 8)
    if span_id is not None:
        out.span_id = span_id
        del attrs["spanId"]
    _fill_pairs(out.attributes, attrs)


def export_request(
    records: list[Record], resource: Mapping[str, str]
) -> tuple[logs_service_pb2.ExportLogsServiceRequest, list[Record]]:
    """One ResourceLogs per entry service, records in spool order; also the unencodable ones."""
    request = logs_service_pb2.ExportLogsServiceRequest()
    scopes: dict[str, Any] = {}
    bad: list[Record] = []
    for record in records:
        service = str(record.entry.get("service") or "unknown")
        scope = scopes.get(service)
        if scope is None:
            resource_logs = request.resource_logs.add()
            _fill_pairs(resource_logs.resource.attributes, {"service.name": service, **resource})
            scope = scopes[service] = resource_logs.scope_logs.add()
            scope.scope.name, scope.scope.version = SCOPE_NAME, __version__
        try:
            log_record(scope.log_records.add(), record)
        except (TypeError, ValueError):  # e.g. a string protobuf refuses: reject it, not the batch
            del scope.log_records[-1]
            bad.append(record)
    return request, bad


# -- answers ----------------------------------------------------------------------------------
def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": RFC 5322's UTC of unknown origin
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _status_message(response: httpx.Response) -> str:
    """The error's text: a protobuf ``google.rpc.Status`` message, or the body itself."""
    if response.headers.get("Content-Type", "").startswith(PROTOBUF):
        status = _status_pb2.Status()
        try:
            status.ParseFromString(response.content)
            return str(status.message)[:200]
        except DecodeError:
            pass
    return response.content[:200].decode("utf-8", "replace")


def signal_outcome(
    response: httpx.Response, sent: int, now: float, *, signal: str, answer: Message, rejected: str
) -> SendResult:
    """What a collector's answer means for a batch of ``sent`` records (raises on failure):
    ``answer`` is the signal's empty Export*ServiceResponse, ``rejected`` the name of its
    partial-success count."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            answer.ParseFromString(response.content)
        except DecodeError:
            return SendResult([])  # accepted; an unreadable body cannot un-accept it
        partial = getattr(answer, "partial_success")  # noqa: B009 - every Export*ServiceResponse has it
        return SendResult([], min(sent, max(0, int(getattr(partial, rejected)))))
    raise DeliveryError(
        f"OTLP {signal}: HTTP {status}: {_status_message(response)}",
        permanent=status not in RETRYABLE,
        retry_after=retry_after(response.headers.get("Retry-After"), now),
    )


def outcome(response: httpx.Response, sent: int, now: float) -> SendResult:
    """What a collector's answer means for a batch of ``sent`` log records."""
    return signal_outcome(
        response,
        sent,
        now,
        signal="logs",
        answer=logs_service_pb2.ExportLogsServiceResponse(),
        rejected="rejected_log_records",
    )


class OtlpLogSink(DeliveringSink):
    """Delivers log entries to an OTLP/HTTP collector's ``/v1/logs`` as gzip protobuf."""

    def __init__(
        self,
        endpoint: str,
        data_dir: Path | str,
        resource: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        compression: bool = True,
        timeout: float = 10.0,
        name: str = "otlp",
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        self._url = logs_url(endpoint)
        self._resource = dict(resource or {})
        self._compression = compression
        self._headers = {
            **(env_headers() if headers is None else headers),
            "Content-Type": PROTOBUF,
            "User-Agent": f"codequal/{__version__}",
        }
        if compression:
            self._headers["Content-Encoding"] = "gzip"
        self._client = httpx.Client(timeout=timeout)
        self._now = clock
        super().__init__(name, data_dir, clock=clock, **options)

    def _send(self, records: list[Record]) -> SendResult:
        request, bad = export_request(records, self._resource)
        body = request.SerializeToString()
        if self._compression:
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        try:
            response = self._client.post(self._url, content=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"OTLP logs to {redact_url(self._url)} failed: {exc!r}") from exc
        if response.status_code == 413 and len(records) > 1:
            return self._split(records)
        result = outcome(response, len(records) - len(bad), self._now())
        return result._replace(failed=result.failed + len(bad))

    def _split(self, records: list[Record]) -> SendResult:
        """Send each half on its own: one oversized entry must not take its batch down."""
        return send_halves(records, self._send)

    def _close_transport(self) -> None:
        self._client.close()


__all__ = ["OtlpLogSink", "env_headers", "export_request", "logs_url", "outcome", "retry_after"]


def from_context(ctx: SinkContext) -> OtlpLogSink | None:
    """On with CODEQUAL_OTLP_ENDPOINT: logs go next to the traces, to the same collector."""
    config = ctx.config
    if not config.otlp_endpoint:
        return None
    resource = {"service.version": __version__, "deployment.environment": config.environment}
    return OtlpLogSink(config.otlp_endpoint, config.data_dir, resource)


def send_halves(records: list[Record], send: Callable[[list[Record]], SendResult]) -> SendResult:
    """Send each half of ``records`` on its own and combine the results (after a 413, or a
    record that cannot be encoded: one bad record must not take its batch down)."""
    retry: list[Record] = []
    failed, wait = 0, None
    half = len(records) // 2
    for part in (records[:half], records[half:]):
        try:
            result = send(part)
        except DeliveryError as exc:
            if exc.permanent:
                failed += len(part)
                continue
            result = SendResult(part, 0, exc.retry_after)
        retry += result.retry
        failed += result.failed
        if result.retry_after is not None:
            wait = max(wait or 0.0, result.retry_after)
    return SendResult(retry, failed, wait)
