"""OTLP/HTTP traces sink: finished spans, spooled, posted to ``<endpoint>/v1/traces`` (gzip).

:class:`SpanDelivery` is the span processor: ``on_end`` only appends the span to a bounded
in-memory queue (oldest dropped and counted when full), so ending a span never waits. Its
worker thread encodes each batch with the OpenTelemetry exporter's own encoder and spools one
record per span: the span's protobuf bytes, with its resource and scope, under the stable id
``<trace id><span id>`` (hex) — the key a collector or CodeQual deduplicates on. The
:class:`OtlpSpanSink` sends the spool head in order with the OTLP/HTTP rules the logs sink
follows (:mod:`codequal.telemetry.sinks.otlp`): 429, 502, 503 and 504 (and network errors)
retried honouring ``Retry-After``, every other error status rejects the batch for good (counted
as failed), ``partial_success.rejected_spans`` counted as failed, a 413 halves the batch.
Headers come from ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` or else ``OTEL_EXPORTER_OTLP_HEADERS``.
"""

from __future__ import annotations

import base64
import gzip
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from google.protobuf.message import DecodeError
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from codequal import __version__
from codequal.exceptions import DeliveryError
from codequal.redaction import redact_url
from codequal.telemetry._worker import BatchWorker
from codequal.telemetry.metrics import SINK_ERRORS, SINK_QUEUE_DROPPED
from codequal.telemetry.sinks.otlp import (
    GZIP_LEVEL,
    PROTOBUF,
    send_halves,
    signal_headers,
    signal_outcome,
    signal_url,
)
from codequal.telemetry.sinks.spool import DeliveringSink, Record, SendResult

TRACES_PATH = "/v1/traces"
OTEL_EXPORTER_OTLP_TRACES_HEADERS = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
SINK_NAME = "otlp-traces"  # "otlp" is the logs sink's
# Between span end and the spool: a burst of spans waits here while the worker writes to disk.
QUEUE_SIZE = 8192
WORKER_BATCH = 512


def traces_url(endpoint: str) -> str:
    return signal_url(endpoint, TRACES_PATH)


def env_headers(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Headers from ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` or else ``OTEL_EXPORTER_OTLP_HEADERS``."""
    return signal_headers(OTEL_EXPORTER_OTLP_TRACES_HEADERS, environ)


# -- encoding ---------------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def span_entries(
    spans: Sequence[ReadableSpan],
) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """Spool entries (``(start ns, entry)``) and stable ids for ``spans``, in their order.

    An entry holds the span, its resource and its scope as base64 protobuf: ``r`` is the
    ResourceSpans and ``s`` the ScopeSpans each without their spans, ``p`` the Span.
    """
    request = encode_spans(spans)
    by_id: dict[bytes, tuple[dict[str, Any], int]] = {}
    for resource_spans in request.resource_spans:
        scopes = list(resource_spans.scope_spans)
        del resource_spans.scope_spans[:]
        resource = _b64(resource_spans.SerializeToString())
        for scope_spans in scopes:
            pb_spans = list(scope_spans.spans)
            del scope_spans.spans[:]
            scope = _b64(scope_spans.SerializeToString())
            for span in pb_spans:
                entry = {"r": resource, "s": scope, "p": _b64(span.SerializeToString())}
                by_id[span.trace_id + span.span_id] = entry, span.start_time_unix_nano
    items: list[tuple[int, dict[str, Any]]] = []
    ids: list[str] = []
    for sdk_span in spans:  # the encoder groups; the spool keeps the order spans ended in
        ctx = sdk_span.get_span_context()
        if ctx is None:
            continue
        key = ctx.trace_id.to_bytes(16, "big") + ctx.span_id.to_bytes(8, "big")
        found = by_id.pop(key, None)
        if found is not None:
            items.append((found[1], found[0]))
            ids.append(key.hex())
    return items, ids


def export_request(records: Sequence[Record]) -> trace_service_pb2.ExportTraceServiceRequest:
    """One ExportTraceServiceRequest for ``records``: spans grouped by resource and scope."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    groups: dict[tuple[str, str], trace_pb2.ScopeSpans] = {}
    resources: dict[str, trace_pb2.ResourceSpans] = {}
    for record in records:
        resource, scope = record.entry["r"], record.entry["s"]
        scope_spans = groups.get((resource, scope))
        if scope_spans is None:
            resource_spans = resources.get(resource)
            if resource_spans is None:
                resource_spans = resources[resource] = request.resource_spans.add()
                resource_spans.ParseFromString(base64.b64decode(resource))
            scope_spans = groups[resource, scope] = resource_spans.scope_spans.add()
            scope_spans.ParseFromString(base64.b64decode(scope))
        scope_spans.spans.add().ParseFromString(base64.b64decode(record.entry["p"]))
    return request


def outcome(response: httpx.Response, sent: int, now: float) -> SendResult:
    """What a collector's answer means for a batch of ``sent`` spans (raises on failure)."""
    return signal_outcome(
        response,
        sent,
        now,
        signal="traces",
        answer=trace_service_pb2.ExportTraceServiceResponse(),
        rejected="rejected_spans",
    )


class OtlpSpanSink(DeliveringSink):
    """Delivers spooled spans to an OTLP/HTTP collector's ``/v1/traces`` as gzip protobuf."""

    def __init__(
        self,
        endpoint: str,
        data_dir: Path | str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        name: str = SINK_NAME,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        self._url = traces_url(endpoint)
        self._headers = {
            **(env_headers() if headers is None else headers),
            "Content-Type": PROTOBUF,
            "Content-Encoding": "gzip",
            "User-Agent": f"codequal/{__version__}",
        }
        self._client = httpx.Client(timeout=timeout)
        self._now = clock
        super().__init__(name, data_dir, clock=clock, **options)

    def _send(self, records: list[Record]) -> SendResult:
        try:
            request = export_request(records)
        except (KeyError, ValueError, DecodeError):  # a record no build of ours could write
            return SendResult([], len(records)) if len(records) == 1 else self._split(records)
        body = gzip.compress(request.SerializeToString(), compresslevel=GZIP_LEVEL)
        try:
            response = self._client.post(self._url, content=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"OTLP traces to {redact_url(self._url)} failed: {exc!r}") from exc
        if response.status_code == 413 and len(records) > 1:
            return self._split(records)
        return outcome(response, len(records), self._now())

    def _split(self, records: list[Record]) -> SendResult:
        """Send each half on its own: one bad or oversized span must not take its batch down."""
        return send_halves(records, self._send)

    def _close_transport(self) -> None:
        self._client.close()


class SpanDelivery(SpanProcessor):
    """Span processor feeding a :class:`DeliveringSink`: ``on_end`` queues, a worker spools."""

    def __init__(self, sink: OtlpSpanSink, *, max_queue: int = QUEUE_SIZE) -> None:
        self.sink = sink
        self._worker: BatchWorker[ReadableSpan] = BatchWorker(
            f"{sink.name}-queue",
            self._spool,
            max_queue=max_queue,
            batch_size=WORKER_BATCH,
            on_drop=SINK_QUEUE_DROPPED.labels(sink=sink.name).inc,
            on_error=lambda _exc: SINK_ERRORS.labels(sink=sink.name).inc(),
        )
        self._worker.start()
        self._closed = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled and not self._closed:
            self._worker.submit(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Spool every ended span, then wait for the spool to drain (both within the timeout)."""
        deadline = time.monotonic() + timeout_millis / 1000
        spooled = self._worker.flush(timeout_millis / 1000)
        return self.sink.wait_delivered(max(0.0, deadline - time.monotonic())) and spooled

    def shutdown(self, timeout: float = 2.0) -> bool:  # type: ignore[override]
        """Spool what is queued, deliver what can be within ``timeout``; the rest stays spooled."""
        if self._closed:
            return True
        self._closed = True
        deadline = time.monotonic() + timeout
        spooled = self._worker.stop(timeout)
        return self.sink.shutdown(max(0.0, deadline - time.monotonic())) and spooled

    def _spool(self, spans: Sequence[ReadableSpan]) -> None:
        items, ids = span_entries(spans)
        if items:
            self.sink.enqueue(items, ids)


__all__ = [
    "SINK_NAME",
    "OtlpSpanSink",
    "SpanDelivery",
    "env_headers",
    "export_request",
    "outcome",
    "span_entries",
    "traces_url",
]
