"""What the server process holds: settings, database, telemetry, and its lifecycle flags."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from codequal.config import Settings
from codequal.storage.db import Database
from codequal.telemetry.setup import Telemetry

if TYPE_CHECKING:
    from codequal.alerting.service import AlertingService
    from codequal.analysis.service import AnalysisService
    from codequal.analytics.anomaly_service import AnomalyService
    from codequal.cluster import Leadership


@dataclass
class AppState:
    settings: Settings
    db: Database
    redis: redis.Redis | None = None
    telemetry: Telemetry | None = None
    analysis: AnalysisService | None = None
    alerting: AlertingService | None = None
    anomalies: AnomalyService | None = None
    leadership: Leadership | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    shutting_down: bool = False
    startup_error: str | None = None

    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.shutting_down

    def wait_ready(self, timeout: float = 30.0) -> bool:
        return self.ready.wait(timeout)
