"""Log destinations: one module per destination behind :class:`codequal.telemetry.logging.Sink`,
each with a ``from_context`` factory listed in :data:`SINKS`, which setup reads.

A new destination is a new module plus one line in :data:`SINKS`. Besides them: spans leave
through :mod:`.otlp_traces` (an OpenTelemetry ``SpanExporter``) and errors through
:mod:`.sentry_forwarder`; the spooled destinations share :class:`.spool.DeliveringSink`.
"""

from __future__ import annotations

from collections.abc import Callable

from codequal.telemetry.logging import Sink
from codequal.telemetry.sinks import console, elasticsearch, loki, otlp, store
from codequal.telemetry.sinks.console import ConsoleSink
from codequal.telemetry.sinks.context import SinkContext
from codequal.telemetry.sinks.elasticsearch import ElasticsearchSink
from codequal.telemetry.sinks.loki import LokiSink
from codequal.telemetry.sinks.otlp import OtlpLogSink
from codequal.telemetry.sinks.store import StoreSink

# name -> factory; a factory returns None when its destination is not configured. The order is
# the order entries are handed to the sinks in.
SINKS: dict[str, Callable[[SinkContext], Sink | None]] = {
    "console": console.from_context,
    "store": store.from_context,
    "loki": loki.from_context,
    "elasticsearch": elasticsearch.from_context,
    "otlp": otlp.from_context,
}


def build_sinks(ctx: SinkContext) -> list[Sink]:
    """Every configured destination, in registry order."""
    return [sink for factory in SINKS.values() if (sink := factory(ctx)) is not None]


__all__ = [
    "SINKS",
    "ConsoleSink",
    "ElasticsearchSink",
    "LokiSink",
    "OtlpLogSink",
    "SinkContext",
    "StoreSink",
    "build_sinks",
]
