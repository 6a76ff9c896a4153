"""Failure-rate spike: the failure ratio is more than twice its baseline.

Twice the baseline is the plan's threshold. On its own it pages on 2 failures out of 40 when
the baseline is 2 %, so when the traffic behind a sample is known the count must also be
unlikely under the baseline: the binomial chance of that many failures or more must be under
``max_p_value``. Samples with fewer than ``min_traffic`` events get no verdict at all. A zero
baseline (no failures yet) is floored at ``min_baseline``: otherwise the first failure would
be an infinite spike. When the traffic is unknown there is no such test, and a ratio that
doubles is ordinary for a noisy one: the sample must then also be above every ratio of its
baseline.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from functools import partial

from codequal.analytics.anomaly.base import Anomaly, TimeSeries
from codequal.analytics.anomaly.baseline import History, ScanParams
from codequal.analytics.anomaly.scan import Judged, Judgement, scan, to_anomaly
from codequal.vocabulary import iso_timestamp

NAME = "failure_rate"


@dataclass(frozen=True)
class FailureRateParams:
    """Thresholds for :func:`detect_failure_rate`; values are ratios 0..1."""

    factor: float = 2.0
    min_baseline: float = 0.005
    max_p_value: float = 1e-5  # by chance alone, one false alarm a year at a 5-minute step
    scan: ScanParams = field(default_factory=lambda: ScanParams(min_traffic=20))

    def __post_init__(self) -> None:
        if self.factor <= 1:
            raise ValueError(f"factor must be above 1, not {self.factor}")
        if not 0 < self.min_baseline < 1:
            raise ValueError(f"min_baseline must be between 0 and 1, not {self.min_baseline}")
        if not 0 < self.max_p_value < 1:
            raise ValueError(f"max_p_value must be between 0 and 1, not {self.max_p_value}")


def detect_failure_rate(
    series: TimeSeries, now: float, params: FailureRateParams | None = None
) -> list[Anomaly]:
    """Windows where the failure ratio exceeds ``factor`` x its baseline (and is significant).

    ``series.values`` are failure ratios; ``series.weights``, when given, the events behind
    each ratio (analyses or requests in the step).
    """
    params = params or FailureRateParams()
    runs = scan(series, now, params.scan, partial(_judge, params))
    return [to_anomaly(NAME, run, partial(_explain, params), _details) for run in runs]


def _judge(params: FailureRateParams, value: float, weight: float | None, h: History) -> Judgement:
    baseline = statistics.median(h.values)
    floor = max(baseline, params.min_baseline)
    high = params.factor * floor
    if weight and floor < 1:
        # Half a failure below the first count that is unlikely enough, as a ratio.
        critical = critical_count(weight, floor, params.max_p_value)
        high = max(high, (critical - 0.5) / weight)
    elif weight is None:
        high = max(high, *h.values)
    return Judgement(baseline, -math.inf, high, value / floor)


def critical_count(n: float, p: float, alpha: float) -> int:
    """The fewest failures k out of n with P(X >= k) < alpha for X ~ Binomial(n, p)."""
    k = math.floor(n * p)
    term = _pmf(k, n, p)
    terms = [term]
    # Above the mean each term is smaller than the one before; stop when they vanish.
    while k < n and term > alpha * 1e-6:
        term *= (n - k) / (k + 1) * p / (1 - p)
        k += 1
        terms.append(term)
    tail = 0.0
    for j in range(len(terms) - 1, -1, -1):
        tail += terms[j]
        if tail >= alpha:
            return math.floor(n * p) + j + 1
    return math.floor(n * p)


def _pmf(k: int, n: float, p: float) -> float:
    if p <= 0:
        return 1.0 if k == 0 else 0.0
    log = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return math.exp(log + k * math.log(p) + (n - k) * math.log1p(-p))


def _explain(params: FailureRateParams, p: Judged) -> str:
    j = p.judgement
    floored = (
        "" if j.expected >= params.min_baseline else f", floored at {_pct(params.min_baseline)}"
    )
    traffic = "" if p.weight is None else f" over {p.weight:.0f} events"
    return (
        f"Failure ratio {_pct(p.value)}{traffic} at {iso_timestamp(p.t)} is "
        f"{j.score:.3g}x its baseline {_pct(j.expected)} (median of the {p.basis}{floored}); "
        f"alert above {_pct(j.high)} ({params.factor:g}x the baseline"
        f"{'' if p.weight is None else f' and under a {params.max_p_value:g} chance at it'})."
    )


def _details(p: Judged) -> dict[str, float]:
    out = {"ratio_to_baseline": p.judgement.score}
    if p.weight is not None:
        out["events"] = p.weight
    return out


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.3g}%"
