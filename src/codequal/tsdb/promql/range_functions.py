"""Functions over a range vector (``rate(x[5m])``, ``avg_over_time``, ...), per series.

Each takes one series' samples inside the window (stale markers already removed, at least
one sample) and returns the value or None to drop the series, exactly as Prometheus 2.x's
``promql/functions.go``: same formulas, same order of floating-point operations, so results
are bit-identical to ``promtool``'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import islice
from typing import NamedTuple

from codequal.tsdb.promql import gomath
from codequal.tsdb.promql.types import PromQLError


class Window(NamedTuple):
    """Where the range sits: ``[start, end]`` in ms, the eval time and scalar parameters."""

    start: int
    end: int
    range_ms: int
    range_s: float  # duration_seconds(range_ms)
    t: int
    param: float = math.nan  # quantile_over_time's φ, predict_linear's horizon, holt_winters' sf
    param2: float = math.nan  # holt_winters' trend factor


RangeFunction = Callable[[Sequence[int], Sequence[float], Window], float | None]


def duration_seconds(ms: int) -> float:
    """Go's ``time.Duration.Seconds()`` for a duration of whole milliseconds."""
    return float(ms // 1000) + float(ms % 1000 * 1_000_000) / 1e9


def _extrapolated_rate(
    ts: Sequence[int], vs: Sequence[float], w: Window, is_counter: bool, is_rate: bool
) -> float | None:
    """Prometheus's ``extrapolatedRate`` (rate, increase, delta)."""
    n = len(ts)
    if n < 2:
        return None
    first = vs[0]
    result = vs[-1] - first
    if is_counter:
        # A drop is a counter reset: add back the value before it.
        prev = first
        for v in vs:
            if v < prev:
                result += prev
            prev = v
    to_start = (ts[0] - w.start) / 1000
    to_end = (w.end - ts[-1]) / 1000
    sampled = (ts[-1] - ts[0]) / 1000
    average = sampled / (n - 1)
    if is_counter and result > 0 and first >= 0:
        # Counters start at zero: never extrapolate the start below it.
        to_zero = sampled * (first / result)
        to_start = min(to_start, to_zero)
    # Extrapolate to a window edge only when the gap to it is about one sample interval
    # (within 10 %); a longer gap means the series started or ended inside the window.
    threshold = average * 1.1
    extrapolate_to = sampled
    extrapolate_to += to_start if to_start < threshold else average / 2
    extrapolate_to += to_end if to_end < threshold else average / 2
    factor = extrapolate_to / sampled
    if is_rate:
        factor /= w.range_s
    return result * factor


def rate(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return _extrapolated_rate(ts, vs, w, is_counter=True, is_rate=True)


def increase(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return _extrapolated_rate(ts, vs, w, is_counter=True, is_rate=False)


def delta(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return _extrapolated_rate(ts, vs, w, is_counter=False, is_rate=False)


def _instant_value(ts: Sequence[int], vs: Sequence[float], is_rate: bool) -> float | None:
    """irate / idelta: the last two samples only."""
    if len(ts) < 2:
        return None
    last, previous = vs[-1], vs[-2]
    result = last if is_rate and last < previous else last - previous
    interval = ts[-1] - ts[-2]
    if interval == 0:
        return None
    if is_rate:
        result /= interval / 1000
    return result


def irate(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return _instant_value(ts, vs, is_rate=True)


def idelta(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return _instant_value(ts, vs, is_rate=False)


def _kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """Prometheus's ``kahanSumInc`` (Neumaier's variant)."""
    t = total + inc
    if abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def _linear_regression(
    ts: Sequence[int], vs: Sequence[float], intercept_time: int
) -> tuple[float, float]:
    """Least-squares slope and intercept, x in seconds relative to ``intercept_time``.

    Kahan-compensated sums, and an exact answer for a constant series, as Prometheus does.
    """
    n = sum_x = c_x = sum_y = c_y = sum_xy = c_xy = sum_x2 = c_x2 = 0.0
    init_y = vs[0]
    const_y = True
    for t, v in zip(ts, vs, strict=True):
        if const_y and v != init_y:
            const_y = False
        n += 1.0
        x = (t - intercept_time) / 1e3
        sum_x, c_x = _kahan_inc(x, sum_x, c_x)
        sum_y, c_y = _kahan_inc(v, sum_y, c_y)
        sum_xy, c_xy = _kahan_inc(x * v, sum_xy, c_xy)
        sum_x2, c_x2 = _kahan_inc(x * x, sum_x2, c_x2)
    if const_y:
        return (gomath.NAN, gomath.NAN) if math.isinf(init_y) else (0.0, init_y)
    sum_x += c_x
    sum_y += c_y
    sum_xy += c_xy
    sum_x2 += c_x2
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = gomath.div(cov_xy, var_x)
    intercept = sum_y / n - slope * sum_x / n
    return slope, intercept


def deriv(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    if len(ts) < 2:
        return None
    # Relative to the first sample's time, to keep x small (prometheus/prometheus#2674).
    return _linear_regression(ts, vs, ts[0])[0]


def predict_linear(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    if len(ts) < 2:
        return None
    # The intercept is at the evaluation time (not the window end, even with an offset).
    slope, intercept = _linear_regression(ts, vs, w.t)
    return slope * w.param + intercept


def avg_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    mean = c = count = 0.0
    for v in vs:
        count += 1
        if math.isinf(mean) and ((math.isinf(v) and (mean > 0) == (v > 0)) or math.isfinite(v)):
            # An infinite mean stays put: the incremental update would turn it into NaN.
            continue
        mean, c = _kahan_inc(v / count - mean / count, mean, c)
    return mean if math.isinf(mean) else mean + c


def sum_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    total = c = 0.0
    for v in vs:
        total, c = _kahan_inc(v, total, c)
    return total if math.isinf(total) else total + c


def count_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return float(len(vs))


def min_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    low = vs[0]
    for v in vs:
        if v < low or math.isnan(low):
            low = v
    return low


def max_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    high = vs[0]
    for v in vs:
        if v > high or math.isnan(high):
            high = v
    return high


def _variance(vs: Sequence[float]) -> float:
    # Welford's online algorithm with Kahan-compensated mean and sum, as Prometheus does.
    count = mean = c_mean = aux = c_aux = 0.0
    for v in vs:
        count += 1
        d = v - (mean + c_mean)
        mean, c_mean = _kahan_inc(d / count, mean, c_mean)
        aux, c_aux = _kahan_inc(d * (v - (mean + c_mean)), aux, c_aux)
    return (aux + c_aux) / count


def stdvar_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return _variance(vs)


def stddev_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return gomath.sqrt(_variance(vs))


def quantile(phi: float, values: Sequence[float]) -> float:
    """Prometheus's ``quantile``: linear interpolation between the closest ranks."""
    if not values or math.isnan(phi):
        return gomath.NAN
    if phi < 0:
        return -gomath.INF
    if phi > 1:
        return gomath.INF
    ordered = sorted(values, key=lambda v: (not math.isnan(v), v))  # NaN sorts first, as in Go
    n = float(len(ordered))
    rank = phi * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[int(lower)] * (1 - weight) + ordered[int(upper)] * weight


def quantile_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return quantile(w.param, vs)


def holt_winters(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    """Double exponential smoothing with smoothing factor ``param``, trend factor ``param2``."""
    sf, tf = w.param, w.param2
    if not 0 < sf < 1:
        raise PromQLError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:f}")
    if not 0 < tf < 1:
        raise PromQLError(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf:f}")
    if len(vs) < 2:
        return None
    s0, s1, trend = 0.0, vs[0], vs[1] - vs[0]
    for i in range(1, len(vs)):
        x = sf * vs[i]
        if i > 1:  # the first trend is the first difference itself
            trend = tf * (s1 - s0) + (1 - tf) * trend
        y = (1 - sf) * (s1 + trend)
        s0, s1 = s1, x + y
    return s1


def last_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return vs[-1]


def present_over_time(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    return 1.0


def changes(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    count = 0
    prev = vs[0]
    for v in islice(vs, 1, None):
        if v != prev and not (math.isnan(v) and math.isnan(prev)):
            count += 1
        prev = v
    return float(count)


def resets(ts: Sequence[int], vs: Sequence[float], w: Window) -> float | None:
    count = 0
    prev = vs[0]
    for v in islice(vs, 1, None):
        if v < prev:
            count += 1
        prev = v
    return float(count)


RANGE_FUNCTIONS: dict[str, RangeFunction] = {
    "rate": rate,
    "irate": irate,
    "increase": increase,
    "delta": delta,
    "idelta": idelta,
    "deriv": deriv,
    "predict_linear": predict_linear,
    "avg_over_time": avg_over_time,
    "sum_over_time": sum_over_time,
    "count_over_time": count_over_time,
    "min_over_time": min_over_time,
    "max_over_time": max_over_time,
    "stddev_over_time": stddev_over_time,
    "stdvar_over_time": stdvar_over_time,
    "quantile_over_time": quantile_over_time,
    "last_over_time": last_over_time,
    "holt_winters": holt_winters,
    "present_over_time": present_over_time,
    "absent_over_time": present_over_time,  # per series; the engine inverts it
    "changes": changes,
    "resets": resets,
}

# last_over_time acts like an offset, so it is the one range function that keeps the name.
KEEPS_METRIC_NAME = frozenset({"last_over_time"})
