"""The anomaly scanner: detectors over the live metric history, stored and routed as alerts.

A thin shell around the pure detectors (:mod:`codequal.analytics.anomaly`). Each scan
re-reads the last ``days`` of history at a 5-minute step through the PromQL engine, judges
every series, stores the windows, and hands the notifier a firing ``Alert`` for each newly
open window and a resolved one for each window that has ended since it fired.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from codequal.alerting.model import Alert, AlertStatus, Transition
from codequal.analytics.anomaly import DEFAULT_DETECTOR, DETECTORS, Detector, TimeSeries
from codequal.analytics.anomaly_store import AnomalyStore, Found, StoredAnomaly
from codequal.storage.db import Database
from codequal.telemetry.setup import get_logger
from codequal.tsdb.promql import Engine, PromQLError, SeriesSource

STEP_SECONDS = 300
DEFAULT_DAYS = 14.0
DEFAULT_INTERVAL = 300.0
RUNBOOK_URL = "/runbooks/AnomalyDetected"
SEVERITY = "ticket"

STARTED_RATE = "sum(rate(codequal_analysis_started_total[5m]))"
FAILURE_RATIO = f"sum(rate(codequal_analysis_failed_total[5m])) / {STARTED_RATE}"
P99_DURATION = (
    "histogram_quantile(0.99, sum by (le) (rate(codequal_analysis_duration_seconds_bucket[5m])))"
)
# Several instances may report a gauge; the fullest one is the one that runs out first.
MEMORY = "max(codequal_system_memory_usage_ratio)"
DISK = "max(codequal_deepwiki_disk_usage_ratio)"


@dataclass(frozen=True)
class Watch:
    """One named series, its query, and the detectors that judge it."""

    series: str
    query: str
    detectors: tuple[str, ...]
    weighted: bool = False  # weights: analyses started in each step


WATCHES: tuple[Watch, ...] = (
    Watch("failure_ratio", FAILURE_RATIO, ("failure_rate",), weighted=True),
    Watch("p99_duration", P99_DURATION, ("latency_drift", DEFAULT_DETECTOR), weighted=True),
    Watch("throughput", STARTED_RATE, (DEFAULT_DETECTOR,)),
    Watch("memory", MEMORY, ("memory_exhaustion",)),
    Watch("disk", DISK, ("disk_exhaustion",)),
)


class AlertSink(Protocol):
    """What the scanner needs of :class:`~codequal.alerting.notifier.Notifier`."""

    def submit(self, transitions: Sequence[Transition], current: Sequence[Alert] = ()) -> None: ...


class AnomalyService:
    """Scans the history, stores anomalies, routes them; ``start``/``stop`` run it on a timer."""

    def __init__(
        self,
        history_store: SeriesSource,
        db: Database,
        notifier: AlertSink,
        *,
        days: float = DEFAULT_DAYS,
        interval: float = DEFAULT_INTERVAL,
        detectors: dict[str, Detector] | None = None,
        watches: Sequence[Watch] = WATCHES,
    ) -> None:
        if days <= 0 or interval <= 0:
            raise ValueError(f"days and interval must be positive, not {days} and {interval}")
        self._engine = Engine(history_store)
        self.store = AnomalyStore(db)
        self._notifier = notifier
        self._days = days
        self._interval = interval
        self._detectors = DETECTORS if detectors is None else detectors
        self._watches = tuple(watches)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._active = True
        self._log = get_logger(service="anomalies")

    def scan_once(self, now: float) -> list[Found]:
        """One pass at ``now`` (Unix seconds): judge, store, route. Returns what was found."""
        since = now - self._days * 86_400
        found: list[Found] = []
        for watch in self._watches:
            series = self._series(watch, since, now)
            if series is None:
                continue
            for name in watch.detectors:
                found.extend(
                    Found(watch.series, a) for a in self._detectors[name].detect(series, now)
                )
        self.store.upsert(found, now)
        seen = {(f.anomaly.detector, f.series, f.anomaly.start) for f in found}
        self.store.close_missing(seen, since, now)
        self._route(now)
        return found

    def _series(self, watch: Watch, since: float, now: float) -> TimeSeries | None:
        step_ms = STEP_SECONDS * 1000
        end_ms = math.floor(now * 1000 / step_ms) * step_ms
        start_ms = end_ms - math.floor((now - since) * 1000 / step_ms) * step_ms
        try:
            values = self._engine.range(watch.query, start_ms, end_ms, step_ms)
            rates = (
                self._engine.range(STARTED_RATE, start_ms, end_ms, step_ms)
                if watch.weighted
                else None
            )
        except PromQLError as exc:
            self._log.warning("anomaly query failed", series=watch.series, error=str(exc))
            return None
        if len(values) == 0:
            return None
        s = values[0]
        if rates is None:
            return TimeSeries.from_millis(s.timestamps, s.values)
        traffic = dict(zip(rates[0].timestamps, rates[0].values, strict=True)) if rates else {}
        weights = [traffic.get(t, 0.0) * STEP_SECONDS for t in s.timestamps]
        return TimeSeries.from_millis(s.timestamps, s.values, weights)

    def _route(self, now: float) -> None:
        transitions: list[Transition] = []
        for row in self.store.query(to_route=True):
            target: AlertStatus = "firing" if row.status == "open" else "resolved"
            alert = anomaly_alert(row, target, now)
            previous: AlertStatus | Literal["inactive"] = (
                "inactive" if target == "firing" else "firing"
            )
            transitions.append(
                Transition(alert.fingerprint, alert.name, previous, target, now, alert)
            )
            self.store.set_alert_status(row.id, target, now)
        if transitions:
            self._notifier.submit(transitions)

    # -- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        """Scan every ``interval`` seconds on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="anomaly-scan", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the loop to end; True when it did within ``timeout``."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def set_active(self, active: bool) -> None:
        """Leadership: with several replicas only the leader scans (and stores anomalies)."""
        self._active = active

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._active:
                    self.scan_once(time.time())
            except Exception as exc:  # noqa: BLE001 - the loop must outlive one bad scan
                self._log.error("anomaly scan failed", error=exc)
            self._stopping.wait(self._interval)


def alert_name(detector: str) -> str:
    """``failure_rate`` → ``AnomalyFailureRate``."""
    return "Anomaly" + "".join(part.capitalize() for part in detector.split("_"))


def anomaly_alert(row: StoredAnomaly, status: AlertStatus, now: float) -> Alert:
    """The alert a stored anomaly routes as: ticket severity, explanation as its text."""
    record = row.record
    labels = {
        "alertname": alert_name(row.detector),
        "severity": SEVERITY,
        "detector": row.detector,
        "series": row.series,
    }
    summary = f"{row.series}: {row.detector} anomaly ({record.get('direction', 'up')})"
    annotations = {
        "summary": summary,
        "description": str(record.get("explanation", "")),
        "runbook_url": RUNBOOK_URL,
    }
    score = record.get("score")
    return Alert(
        labels=labels,
        annotations=annotations,
        status=status,
        active_at=row.start,
        fired_at=row.start,
        resolved_at=now if status == "resolved" else None,
        value=float(score) if isinstance(score, int | float) else None,
    )
