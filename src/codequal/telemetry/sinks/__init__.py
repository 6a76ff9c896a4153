"""Log sinks: one module per destination behind :class:`codequal.telemetry.logging.Sink`.

A new destination is a new module plus one line in :data:`SINKS`.
"""

from __future__ import annotations

from codequal.telemetry.sinks.console import ConsoleSink
from codequal.telemetry.sinks.elasticsearch import ElasticsearchSink
from codequal.telemetry.sinks.loki import LokiSink
from codequal.telemetry.sinks.otlp import OtlpLogSink
from codequal.telemetry.sinks.store import StoreSink

SINKS = {
    "console": ConsoleSink,
    "store": StoreSink,
    "loki": LokiSink,
    "elasticsearch": ElasticsearchSink,
    "otlp": OtlpLogSink,
}

__all__ = ["SINKS", "ConsoleSink", "ElasticsearchSink", "LokiSink", "OtlpLogSink", "StoreSink"]
