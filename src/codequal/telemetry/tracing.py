"""OpenTelemetry tracing: the SDK provider, the store exporter and W3C trace-context helpers.

Ending a span only appends it to a bounded in-memory queue per destination: the embedded
store's ``BatchSpanProcessor``, and, when an OTLP endpoint is configured, the
:class:`~codequal.telemetry.sinks.otlp_traces.SpanDelivery` in front of an on-disk spool, so
spans ended while the collector is down are delivered, in order, once it is back.
"""

from __future__ import annotations

import atexit
import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from codequal.telemetry.metrics import SINK_ERRORS
from codequal.telemetry.sinks.otlp_traces import OtlpSpanSink, SpanDelivery
from codequal.telemetry.stores.spans import SpanRecord, SpanStore

_log = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "codequal"
# The store is local and cheap to write, so spans become queryable within half a second; the
# larger queue absorbs an analysis that opens thousands of spans while SQLite checkpoints.
STORE_SCHEDULE_DELAY_MS = 500
STORE_MAX_QUEUE = 8192
# A collector that does not answer must not hold the delivery thread for long.
OTLP_TIMEOUT_SECONDS = 5.0

_PROPAGATOR = TraceContextTextMapPropagator()


def _json_safe(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    # JSON has no NaN or Infinity, and PostgreSQL rejects the whole batch over one of them.
    return {
        k: str(v) if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in (attributes or {}).items()
    }


def span_record(span: ReadableSpan) -> SpanRecord:
    """The stored form of a finished SDK span."""
    ctx = span.get_span_context() or trace.INVALID_SPAN_CONTEXT
    start = span.start_time or 0
    end = span.end_time or start  # an exporter only sees ended spans; this is for the type
    parent = span.parent
    return SpanRecord(
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_span_id=f"{parent.span_id:016x}" if parent is not None else None,
        name=span.name,
        kind=span.kind.name,
        service=str(span.resource.attributes.get("service.name", "unknown")),
        start_ts=start / 1e9,
        end_ts=end / 1e9,
        duration=(end - start) / 1e9,
        status=span.status.status_code.name,
        status_message=span.status.description,
        attributes=_json_safe(span.attributes),
        events=[
            {"name": e.name, "timestamp": e.timestamp / 1e9, "attributes": _json_safe(e.attributes)}
            for e in span.events
        ],
    )


class StoreSpanExporter(SpanExporter):
    """Writes finished spans to the embedded store (called on the batch processor's thread)."""

    def __init__(self, store: SpanStore) -> None:
        self._store = store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self._store.write([span_record(s) for s in spans])
        except Exception:  # noqa: BLE001 - a failed batch is counted, never raised into the SDK
            SINK_ERRORS.labels(sink="span_store").inc()
            _log.warning("could not store %d spans", len(spans), exc_info=True)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here; the processor holds the queue


def _within(timeout: float, name: str, action: Callable[[], object]) -> bool:
    """Run ``action`` on a daemon thread; True if it finished (truthy) within ``timeout``.

    The SDK's flush and shutdown ignore their timeouts while an export is in flight, and an
    unreachable collector must not hold a graceful shutdown past its deadline.
    """
    outcome = [False]
    done = threading.Event()

    def run() -> None:
        try:
            outcome[0] = action() is not False
        except Exception:  # noqa: BLE001 - shutdown reports failure instead of raising
            _log.warning("tracing %s failed", name, exc_info=True)
        finally:
            done.set()

    threading.Thread(target=run, name=f"cq-tracing-{name}", daemon=True).start()
    return done.wait(timeout) and outcome[0]


class Tracing:
    """The configured provider and its tracer. Create it with :func:`setup_tracing`."""

    def __init__(
        self,
        provider: TracerProvider,
        delivery: Sequence[SpanDelivery] = (),
        temp_dir: str | None = None,
    ) -> None:
        self.provider = provider
        self.delivery = list(delivery)  # the spooled destinations, for /health and shutdown
        self._temp_dir = temp_dir  # a spool that must not outlive the process
        self.tracer: trace.Tracer = provider.get_tracer(INSTRUMENTATION_NAME)
        # Bound once: span() is on the hot path of every instrumented step.
        self._start = self.tracer.start_as_current_span
        self._closed = False
        atexit.register(self._shutdown_at_exit)

    def span(self, name: str, **attributes: AttributeValue) -> AbstractContextManager[trace.Span]:
        """A child of the current span, current inside the ``with`` block.

        An exception leaving the block is recorded on the span (an ``exception`` event) and
        sets its status to ERROR, then propagates unchanged.
        """
        return self._start(name, attributes=attributes or None)

    def flush(self, timeout: float = 5.0) -> bool:
        """Export every finished span now; False if that did not finish within ``timeout``."""
        if self._closed:
            return True
        return _within(timeout, "flush", lambda: self.provider.force_flush(int(timeout * 1000)))

    @property
    def sinks(self) -> list[OtlpSpanSink]:
        """The spooled span sinks (each reports its own health)."""
        return [d.sink for d in self.delivery]

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush and stop the exporters with a deadline; spans ended later are dropped.

        What a spooled destination did not take by then stays in its spool for the next start.
        """
        if self._closed:
            return True
        self._closed = True
        atexit.unregister(self._shutdown_at_exit)
        return _within(timeout, "shutdown", lambda: self._shutdown(timeout))

    def _shutdown(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        ok = True
        for delivery in self.delivery:
            ok = delivery.shutdown(max(0.0, deadline - time.monotonic())) and ok
        self.provider.shutdown()  # the store's processor; the spooled ones are closed already
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
        return ok

    def _shutdown_at_exit(self) -> None:
        self.shutdown(timeout=5.0)


def setup_tracing(
    *,
    service: str,
    version: str,
    environment: str,
    span_store: SpanStore | None,
    otlp_endpoint: str | None,
    data_dir: Path | str | None = None,
    set_global: bool = False,
) -> Tracing:
    """Build the tracer provider with an exporter per destination.

    ``otlp_endpoint`` is the collector's base URL (``http://tempo:4318``); spans are posted
    to ``<endpoint>/v1/traces``, spooled under ``data_dir`` (a temporary directory, which
    does not outlive the process, when None). The global provider is set only when
    ``set_global`` is true, because OpenTelemetry allows that once per process.
    """
    resource = Resource.create(
        {
            "service.name": service,
            "service.version": version,
            "deployment.environment": environment,
        }
    )
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    if span_store is not None:
        provider.add_span_processor(
            BatchSpanProcessor(
                StoreSpanExporter(span_store),
                max_queue_size=STORE_MAX_QUEUE,
                schedule_delay_millis=STORE_SCHEDULE_DELAY_MS,
            )
        )
    delivery: list[SpanDelivery] = []
    temp_dir = None
    if otlp_endpoint:
        if data_dir is None:
            data_dir = temp_dir = tempfile.mkdtemp(prefix="codequal-")
        sink = OtlpSpanSink(otlp_endpoint, data_dir, timeout=OTLP_TIMEOUT_SECONDS)
        delivery.append(SpanDelivery(sink))
        provider.add_span_processor(delivery[-1])
    if set_global:
        trace.set_tracer_provider(provider)
    return Tracing(provider, delivery, temp_dir)


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Reads header names case-insensitively from any mapping (a plain dict included)."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            value = next((v for k, v in carrier.items() if k.lower() == key), None)
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeaderGetter()


def extract_context(headers: Mapping[str, str]) -> Context:
    """The remote parent carried by a W3C ``traceparent`` header (an empty context if none).

    Start the server span under it:
    ``tracing.tracer.start_as_current_span(name, context=ctx, kind=SpanKind.SERVER)``.
    """
    return _PROPAGATOR.extract(headers, getter=_GETTER)


def inject(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    """Add ``traceparent`` (and ``tracestate``) for the current (or given) span to ``carrier``."""
    _PROPAGATOR.inject(carrier, context=context)
