"""Every detector by name. A new detector is a new module plus one line in ``DETECTORS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from codequal.analytics.anomaly.base import Anomaly, Detector, TimeSeries
from codequal.analytics.anomaly.envelope import EnvelopeParams, detect_envelope
from codequal.analytics.anomaly.exhaustion import DISK, MEMORY, detect_exhaustion
from codequal.analytics.anomaly.failure_rate import FailureRateParams, detect_failure_rate
from codequal.analytics.anomaly.latency_drift import LatencyDriftParams, detect_latency_drift
from codequal.analytics.anomaly.robust_z import RobustZParams, detect_robust_z

P = TypeVar("P")


@dataclass(frozen=True)
class BoundDetector(Generic[P]):
    """A detector function with its parameters bound: what the registry and scheduler hold."""

    name: str
    summary: str
    params: P
    function: Callable[[TimeSeries, float, P], list[Anomaly]]

    def detect(self, series: TimeSeries, now: float) -> list[Anomaly]:
        """Every anomaly window among the samples at or before ``now``."""
        return self.function(series, now, self.params)


_ALL: tuple[Detector, ...] = (
    BoundDetector(
        "envelope",
        "leaves the envelope of its own past extremes (value, 8/32-sample means, daily profile)",
        EnvelopeParams(),
        detect_envelope,
    ),
    BoundDetector(
        "failure_rate",
        "failure ratio above 2x its baseline, with enough traffic to mean it",
        FailureRateParams(),
        detect_failure_rate,
    ),
    BoundDetector(
        "latency_drift",
        "p99 duration above 1.5x the expected p99",
        LatencyDriftParams(),
        detect_latency_drift,
    ),
    BoundDetector(
        "robust_z",
        "robust z-score (median/MAD) against a seasonal or trailing baseline",
        RobustZParams(),
        detect_robust_z,
    ),
    BoundDetector(
        "memory_exhaustion",
        "linear fit says memory is full in under 30 minutes",
        MEMORY,
        detect_exhaustion,
    ),
    BoundDetector(
        "disk_exhaustion",
        "linear fit says the disk is full within the horizon (default 24 h)",
        DISK,
        detect_exhaustion,
    ),
)

DETECTORS: dict[str, Detector] = {d.name: d for d in _ALL}
# What ``codequal anomaly scan`` and the service's general series use.
DEFAULT_DETECTOR = "envelope"
