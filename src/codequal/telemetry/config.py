"""What telemetry needs to know, and nothing else: built once from the settings by the runtime
(:func:`codequal.runtime.wiring.telemetry_config`), read by setup and by each sink's factory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codequal.vocabulary import Level


@dataclass(frozen=True)
class TelemetryConfig:
    service_name: str = "codequal"
    environment: str = "development"
    release: str | None = None
    log_level: Level = "info"
    log_format: str = "auto"  # json | console | auto
    log_queue_size: int = 10_000
    log_batch_size: int = 500
    log_flush_interval: float = 0.25
    shutdown_timeout: float = 10.0
    label_cap: int = 50
    data_dir: Path = Path(".codequal")  # spools of the delivering sinks live under it
    sentry_dsn: str | None = None
    otlp_endpoint: str | None = None
    loki_url: str | None = None
    elasticsearch_url: str | None = None
