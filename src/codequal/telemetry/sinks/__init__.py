"""Log sinks: one module per destination behind :class:`codequal.telemetry.logging.Sink`.

A new destination is a new module plus one line in :data:`SINKS`.
"""

from __future__ import annotations

from codequal.telemetry.sinks.console import ConsoleSink
from codequal.telemetry.sinks.store import StoreSink

SINKS = {"console": ConsoleSink, "store": StoreSink}

__all__ = ["SINKS", "ConsoleSink", "StoreSink"]
