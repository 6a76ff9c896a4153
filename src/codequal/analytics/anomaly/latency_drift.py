"""Latency drift: the p99 duration is more than 1.5x the p99 expected at this time.

The expected p99 is the median of earlier p99 samples, at the same hour of week or day when
the history covers enough periods (latency follows load), else over a trailing window. A p99
that is 1.5x its median is ordinary for a jittery service: the sample must also be above
every p99 of that baseline, so what was already seen there at this hour is not drift. A
baseline that is not a positive duration (0 s of idle steps, or a series that is no latency
at all) gives no verdict: a ratio to it means nothing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from functools import partial

from codequal.analytics.anomaly.base import Anomaly, TimeSeries, num
from codequal.analytics.anomaly.baseline import History, ScanParams
from codequal.analytics.anomaly.scan import Judged, Judgement, scan, to_anomaly
from codequal.vocabulary import iso_timestamp

NAME = "latency_drift"


@dataclass(frozen=True)
class LatencyDriftParams:
    """Thresholds for :func:`detect_latency_drift`; values are seconds."""

    factor: float = 1.5
    scan: ScanParams = field(default_factory=lambda: ScanParams(min_traffic=10))

    def __post_init__(self) -> None:
        if self.factor <= 1:
            raise ValueError(f"factor must be above 1, not {self.factor}")


def detect_latency_drift(
    series: TimeSeries, now: float, params: LatencyDriftParams | None = None
) -> list[Anomaly]:
    """Windows where the p99 exceeds ``factor`` x its expected value.

    ``series.values`` are p99 durations; ``series.weights``, when given, the number of
    durations behind each p99 (a p99 of five analyses is their maximum, not a trend).
    """
    params = params or LatencyDriftParams()
    runs = scan(series, now, params.scan, partial(_judge, params))
    return [to_anomaly(NAME, run, partial(_explain, params), _details) for run in runs]


def _judge(params: LatencyDriftParams, value: float, weight: float | None, h: History) -> Judgement:
    expected = statistics.median(h.values)
    if not expected > 0:
        return Judgement(expected, -math.inf, math.inf, 0.0)
    high = max(params.factor * expected, *h.values)
    return Judgement(expected, -math.inf, high, value / expected)


def _explain(params: LatencyDriftParams, p: Judged) -> str:
    j = p.judgement
    return (
        f"p99 duration {num(p.value)} s at {iso_timestamp(p.t)} is {j.score:.3g}x the "
        f"expected p99 {num(j.expected)} s (median of the {p.basis}); alert above {num(j.high)} s "
        f"({params.factor:g}x expected, and above every p99 of that baseline)."
    )


def _details(p: Judged) -> dict[str, float]:
    out = {"ratio_to_expected": p.judgement.score}
    if p.weight is not None:
        out["events"] = p.weight
    return out
