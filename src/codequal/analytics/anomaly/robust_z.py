"""Robust z-score against a seasonal baseline, for throughput and latency series.

z = (value - median) / (1.4826 x MAD): the median and the median absolute deviation ignore
the outliers that would inflate a mean and a standard deviation, so one incident in the
history does not hide the next. The baseline is hour-of-week or hour-of-day when the history
covers enough periods, a trailing window otherwise (see ``baseline``). Two-sided: a drop in
throughput is as much news as a surge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from codequal.analytics.anomaly.base import Anomaly, TimeSeries, num
from codequal.analytics.anomaly.baseline import (
    MAD_TO_SIGMA,
    History,
    ScanParams,
    median_mad,
    small_sample_threshold,
)
from codequal.analytics.anomaly.scan import Judged, Judgement, band_text, incident_anomaly, scan
from codequal.vocabulary import iso_timestamp

NAME = "robust_z"
# Only to avoid dividing by zero when the baseline is exactly zero and flat.
_TINY = 1e-12


@dataclass(frozen=True)
class RobustZParams:
    """Thresholds for :func:`detect_robust_z`."""

    threshold: float = 4.0
    # A flat history has MAD 0, which would make any wiggle infinitely anomalous; a scale of
    # at least this fraction of the level keeps a 0.1 % change from paging.
    min_relative_scale: float = 0.01
    scan: ScanParams = field(default_factory=ScanParams)

    def __post_init__(self) -> None:
        if self.threshold <= 0:
            raise ValueError(f"threshold must be positive, not {self.threshold}")
        if self.min_relative_scale < 0:
            raise ValueError(f"min_relative_scale must be >= 0, not {self.min_relative_scale}")


def detect_robust_z(
    series: TimeSeries, now: float, params: RobustZParams | None = None
) -> list[Anomaly]:
    """Windows where |robust z| exceeds ``threshold``, in either direction."""
    params = params or RobustZParams()
    incidents = scan(series, now, params.scan, partial(_judge, params))
    return [incident_anomaly(NAME, i, partial(_explain, params), _details) for i in incidents]


def _judge(params: RobustZParams, value: float, weight: float | None, h: History) -> Judgement:
    centre, mad = median_mad(h.values)
    scale = max(MAD_TO_SIGMA * mad, params.min_relative_scale * abs(centre), _TINY)
    k = small_sample_threshold(params.threshold, len(h.values))
    return Judgement(centre, centre - k * scale, centre + k * scale, abs(value - centre) / scale)


def _explain(params: RobustZParams, p: Judged) -> str:
    j = p.judgement
    scale = abs(p.value - j.expected) / j.score
    k = (j.high - j.expected) / scale
    side = "above" if p.value > j.expected else "below"
    widened = f", widened to {k:.2g} for the sample size" if k > params.threshold + 0.05 else ""
    return (
        f"Value {num(p.value)} at {iso_timestamp(p.t)} is {j.score:.3g} robust z {side} the "
        f"baseline {num(j.expected)} (median of the {p.basis}, scale 1.4826 x MAD = "
        f"{num(scale)}); {band_text(j)}: |z| up to {params.threshold:g}{widened}."
    )


def _details(p: Judged) -> dict[str, float]:
    j = p.judgement
    return {"z": j.score if p.value >= j.expected else -j.score}
