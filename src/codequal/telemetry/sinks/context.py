"""What a log sink's factory is given to decide whether, and how, to build its sink."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from codequal.storage.db import Database
from codequal.telemetry.config import TelemetryConfig


@dataclass(frozen=True)
class SinkContext:
    config: TelemetryConfig
    db: Database | None  # None: no embedded store (a CLI run without a database)
    console: BinaryIO | None  # None: standard error
