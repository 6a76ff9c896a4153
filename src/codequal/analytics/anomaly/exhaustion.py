"""Resource exhaustion: minutes until a resource is full, from a linear fit of its recent use.

At each sample the trailing ``fit_window`` is fitted by least squares; the time left is the
room (capacity - current value) over the fitted slope. The sample is anomalous when that is
under ``horizon``: 30 minutes for memory, the configured horizon for the DeepWiki disk. A fit
that explains little of the variation (r² under ``min_r_squared``) is not a trend, so then
only a resource already at capacity is reported. Level-shift adaptation does not apply: a
resource that fills up does not become fine by staying full. A series with any sample above
``capacity`` gets no verdict: a resource cannot be fuller than full, so the series is not in
the capacity's unit (bytes, or a count, judged against the default ratio 1.0) and every
forecast from it would be noise.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from codequal.analytics.anomaly.base import (
    DAY,
    HOUR,
    MINUTE,
    Anomaly,
    TimeSeries,
    duration_text,
    num,
    upto,
)
from codequal.analytics.anomaly.scan import Judged, Judgement, RunBuilder, to_anomaly
from codequal.vocabulary import iso_timestamp


@dataclass(frozen=True)
class ExhaustionParams:
    """What is filling up, how full is full, and how much warning is enough (seconds)."""

    resource: str = "memory"
    capacity: float = 1.0  # in the series' unit: 1.0 for a ratio, bytes for bytes
    horizon: float = 30 * MINUTE
    fit_window: float = HOUR
    min_samples: int = 10
    min_history: float = 15 * MINUTE
    # A step (a big clone, a cache warming up) fits a line with r² of at most 0.75: above
    # that, the growth is a trend and not a one-off jump.
    min_r_squared: float = 0.8
    merge_gap: float = 30 * MINUTE

    def __post_init__(self) -> None:
        for name in ("capacity", "horizon", "fit_window", "min_history", "merge_gap"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.min_samples < 3:
            raise ValueError(
                f"min_samples must be at least 3 to fit a line, not {self.min_samples}"
            )
        if not 0 <= self.min_r_squared <= 1:
            raise ValueError(f"min_r_squared must be between 0 and 1, not {self.min_r_squared}")


MEMORY = ExhaustionParams()
DISK = ExhaustionParams(
    resource="disk", horizon=DAY, fit_window=6 * HOUR, min_history=HOUR, merge_gap=HOUR
)


class Forecast(NamedTuple):
    """A linear fit at ``now``: growth per second, fit quality, and time until full."""

    value: float  # the last sample
    slope: float  # per second
    r_squared: float
    seconds_left: float  # inf when not growing or no trend; 0 when already full


def forecast(series: TimeSeries, now: float, params: ExhaustionParams = MEMORY) -> Forecast | None:
    """The fit at the last sample at or before ``now``, or None with too little history."""
    series = upto(series, now)
    if not series.timestamps or not in_capacity_unit(series, params.capacity):
        return None
    return _forecast_at(series.timestamps, series.values, len(series.timestamps) - 1, params)


def _forecast_at(
    ts: Sequence[float], vs: Sequence[float], i: int, params: ExhaustionParams
) -> Forecast | None:
    t, value = ts[i], vs[i]
    if not math.isfinite(value):
        return None
    lo = bisect_left(ts, t - params.fit_window, 0, i)
    points = [(ts[j] - t, vs[j]) for j in range(lo, i + 1) if math.isfinite(vs[j])]
    if len(points) < params.min_samples or -points[0][0] < params.min_history:
        return None
    slope, r_squared = _fit(points)
    room = params.capacity - value
    if room <= 0:
        left = 0.0
    elif slope <= 0 or r_squared < params.min_r_squared:
        left = math.inf
    else:
        left = room / slope
    return Forecast(value, slope, r_squared, left)


def in_capacity_unit(series: TimeSeries, capacity: float) -> bool:
    """No sample above ``capacity``: the series can be a use of that capacity."""
    return not any(v > capacity for v in series.values if math.isfinite(v))


def _fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope and r² (a flat line fits perfectly but has no trend: r² 0)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    syy = sum((y - my) ** 2 for _, y in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    if sxx == 0 or syy == 0:
        return 0.0, 0.0
    return sxy / sxx, sxy * sxy / (sxx * syy)


def detect_exhaustion(
    series: TimeSeries, now: float, params: ExhaustionParams = MEMORY
) -> list[Anomaly]:
    """Windows where the resource would be full within ``horizon`` at its current growth."""
    series = upto(series, now)
    if not in_capacity_unit(series, params.capacity):
        return []
    runs = RunBuilder(params.merge_gap)
    forecasts: dict[int, Forecast] = {}
    for i, t in enumerate(series.timestamps):
        fc = _forecast_at(series.timestamps, series.values, i, params)
        if fc is not None:
            forecasts[i] = fc
            runs.observe(Judged(i, t, fc.value, None, _judge(params, fc), ""))
    name = f"{params.resource}_exhaustion"

    def details(p: Judged) -> dict[str, float]:
        return _details(forecasts[p.position])

    explain = partial(_explain, params, forecasts)
    return [to_anomaly(name, run, explain, details) for run in runs.finish(now)]


def _judge(params: ExhaustionParams, fc: Forecast) -> Judgement:
    # Above `high` the room left lasts less than the horizon at the fitted growth.
    growing = fc.slope > 0 and fc.r_squared >= params.min_r_squared
    high = params.capacity - fc.slope * params.horizon if growing else params.capacity
    # Anomalous means strictly above `high`, and a resource exactly at capacity is full.
    high = min(high, math.nextafter(params.capacity, -math.inf))
    score = params.horizon / max(fc.seconds_left, MINUTE)
    return Judgement(fc.value, -math.inf, high, score)


def _explain(params: ExhaustionParams, forecasts: dict[int, Forecast], p: Judged) -> str:
    fc = forecasts[p.position]
    left = fc.seconds_left
    when = "full now" if left == 0 else f"full in {duration_text(left)}"
    return (
        f"{params.resource.capitalize()} at {num(p.value)} of capacity {num(params.capacity)} "
        f"at {iso_timestamp(p.t)}, growing {num(fc.slope * MINUTE)} per minute "
        f"(fit over the last {duration_text(params.fit_window)}, r² {fc.r_squared:.2f}): "
        f"{when}, under the {duration_text(params.horizon)} horizon."
    )


def _details(fc: Forecast) -> dict[str, float]:
    return {
        "minutes_left": fc.seconds_left / MINUTE,
        "slope_per_minute": fc.slope * MINUTE,
        "r_squared": fc.r_squared,
    }
