"""Anomaly detection: pure detectors over ``(timestamps, values)`` with an explicit ``now``.

Each detector explains its verdict (baseline, band, score) and follows the same rules: no
verdict without a minimum history and traffic, and a shift that persists becomes the new
normal. ``envelope`` is the general-purpose streaming detector and the default;
``DETECTORS`` holds them by name; ``csvio`` reads exported series for backtests.
"""

from __future__ import annotations

from codequal.analytics.anomaly.base import (
    Anomaly,
    Detector,
    Direction,
    SeriesError,
    Status,
    TimeSeries,
)
from codequal.analytics.anomaly.baseline import ScanParams
from codequal.analytics.anomaly.envelope import EnvelopeParams, EnvelopeState, detect_envelope
from codequal.analytics.anomaly.exhaustion import (
    DISK,
    MEMORY,
    ExhaustionParams,
    Forecast,
    detect_exhaustion,
    forecast,
)
from codequal.analytics.anomaly.failure_rate import FailureRateParams, detect_failure_rate
from codequal.analytics.anomaly.latency_drift import LatencyDriftParams, detect_latency_drift
from codequal.analytics.anomaly.registry import DEFAULT_DETECTOR, DETECTORS, BoundDetector
from codequal.analytics.anomaly.robust_z import RobustZParams, detect_robust_z

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "DISK",
    "MEMORY",
    "Anomaly",
    "BoundDetector",
    "Detector",
    "Direction",
    "EnvelopeParams",
    "EnvelopeState",
    "ExhaustionParams",
    "FailureRateParams",
    "Forecast",
    "LatencyDriftParams",
    "RobustZParams",
    "ScanParams",
    "SeriesError",
    "Status",
    "TimeSeries",
    "detect_envelope",
    "detect_exhaustion",
    "detect_failure_rate",
    "detect_latency_drift",
    "detect_robust_z",
    "forecast",
]
