"""Range functions over every window of a range query at once, with numpy.

The samples of all selected series sit end to end in two flat arrays; each window (one per
series and step) is an index range ``[lo, hi)`` into them. Functions that Prometheus computes
with a running sum (Kahan, incremental mean, Welford, the regression of ``deriv``) walk the
windows column by column, all windows together, with the same operations in the same order
as :mod:`~codequal.tsdb.promql.range_functions`, so results are bit-identical to it; the
others need no loop at all. Functions without a vectorised form run the scalar one per window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from codequal.tsdb.promql import range_functions
from codequal.tsdb.promql.block import Bools, Floats, Ints
from codequal.tsdb.promql.range_functions import RANGE_FUNCTIONS, Window


@dataclass(frozen=True, slots=True)
class Windows:
    """Every window of one range function call over the flat samples ``ts`` / ``vs``."""

    ts: Ints
    vs: Floats
    lo: Ints
    hi: Ints
    starts: Ints  # each window's [start, end] in ms
    ends: Ints
    evals: Ints  # each window's evaluation time
    range_ms: int
    params: tuple[Floats, ...]  # each scalar parameter, per window

    @property
    def counts(self) -> Ints:
        return self.hi - self.lo

    def columns(self, need: int = 1) -> Iterator[tuple[int, Bools, Ints]]:
        """(k, windows with a k-th sample, its index) for k = 0, 1, ... up to the longest
        window, over the windows holding at least ``need`` samples."""
        n = self.counts
        longest = int(n.max(initial=0))
        for k in range(longest):
            has = (n > k) & (n >= need)
            yield k, has, np.where(has, self.lo + k, 0)


Result = tuple[Floats, Bools]


def _kahan_inc(inc: Floats, total: Floats, c: Floats) -> tuple[Floats, Floats]:
    t = total + inc
    big = np.abs(total) >= np.abs(inc)
    c = c + np.where(big, (total - t) + inc, (inc - t) + total)
    return t, c


def _masked(has: Bools, new: Floats, old: Floats) -> Floats:
    return np.where(has, new, old)


_GATHER_CELLS = 1 << 21  # samples gathered at once: windows are summed in chunks this big


def _parts(w: Windows) -> Iterator[tuple[slice, Ints, Bools]]:
    """Chunks of windows with their samples' indices as a zero-padded (longest, windows)
    grid: row k holds each window's k-th sample (``valid`` where it has one)."""
    counts = w.counts
    longest = max(int(counts.max(initial=0)), 1)
    per = max(1, _GATHER_CELLS // longest)
    for start in range(0, w.lo.size, per):
        part = slice(start, start + per)
        n = counts[part]
        k = np.arange(int(n.max(initial=0)))[:, None]
        valid = k < n[None, :]
        yield part, np.where(valid, w.lo[part][None, :] + k, 0), valid


def _compensated(rows: Floats) -> tuple[Floats, Floats]:
    """Prometheus's Kahan sum (``kahanSumInc``) down the columns of a zero-padded grid:
    (sum, compensation) of each column. Adding a padding zero changes neither.

    The error term is computed with Knuth's branch-free two-sum, which yields the same exact
    rounding error as the branch on magnitudes whenever nothing overflows; columns that do
    overflow are summed again the branching way.
    """
    total = np.zeros(rows.shape[1])
    c = np.zeros(rows.shape[1])
    s, bb, err = (np.empty(rows.shape[1]) for _ in range(3))
    for row in rows:
        np.add(total, row, out=s)
        np.subtract(s, total, out=bb)
        np.subtract(s, bb, out=err)
        np.subtract(total, err, out=err)
        np.subtract(row, bb, out=bb)
        err += bb
        c += err
        total, s = s, total
    overflowed = ~(np.isfinite(total) & np.isfinite(c))
    if overflowed.any():
        total[overflowed], c[overflowed] = _branching(rows[:, overflowed])
    return total, c


def _branching(rows: Floats) -> tuple[Floats, Floats]:
    total = np.zeros(rows.shape[1])
    c = np.zeros(rows.shape[1])
    for row in rows:
        total, c = _kahan_inc(row, total, c)
    return total, c


def sum_over_time(w: Windows) -> Result:
    out = np.zeros(w.lo.size)
    for part, idx, valid in _parts(w):
        total, c = _compensated(np.where(valid, w.vs[idx], 0.0))
        out[part] = np.where(np.isinf(total), total, total + c)
    return out, w.counts > 0


def avg_over_time(w: Windows) -> Result:
    mean = np.zeros(w.lo.size)
    c = np.zeros(w.lo.size)
    for k, has, idx in w.columns():
        v = w.vs[idx]
        count = float(k + 1)
        same_inf = np.isinf(v) & ((mean > 0) == (v > 0))
        stays = np.isinf(mean) & (same_inf | np.isfinite(v))
        m2, c2 = _kahan_inc(v / count - mean / count, mean, c)
        update = has & ~stays
        mean, c = _masked(update, m2, mean), _masked(update, c2, c)
    return np.where(np.isinf(mean), mean, mean + c), w.counts > 0


def _extreme(w: Windows, better: Callable[[Floats, Floats], Bools]) -> Result:
    best = w.vs[np.where(w.counts > 0, w.lo, 0)]
    for _, has, idx in w.columns():
        v = w.vs[idx]
        best = np.where(has & (better(v, best) | np.isnan(best)), v, best)
    return best, w.counts > 0


def min_over_time(w: Windows) -> Result:
    return _extreme(w, np.less)


def max_over_time(w: Windows) -> Result:
    return _extreme(w, np.greater)


def count_over_time(w: Windows) -> Result:
    return w.counts.astype(np.float64), w.counts > 0


def last_over_time(w: Windows) -> Result:
    return w.vs[np.maximum(w.hi - 1, 0)], w.counts > 0


def present_over_time(w: Windows) -> Result:
    return np.ones(w.lo.size), w.counts > 0


def _variance(w: Windows) -> Floats:
    mean = np.zeros(w.lo.size)
    c_mean = np.zeros(w.lo.size)
    aux = np.zeros(w.lo.size)
    c_aux = np.zeros(w.lo.size)
    for k, has, idx in w.columns():
        v = w.vs[idx]
        d = v - (mean + c_mean)
        m2, cm2 = _kahan_inc(d / float(k + 1), mean, c_mean)
        a2, ca2 = _kahan_inc(d * (v - (m2 + cm2)), aux, c_aux)
        mean, c_mean = _masked(has, m2, mean), _masked(has, cm2, c_mean)
        aux, c_aux = _masked(has, a2, aux), _masked(has, ca2, c_aux)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (aux + c_aux) / w.counts


def stdvar_over_time(w: Windows) -> Result:
    return _variance(w), w.counts > 0


def stddev_over_time(w: Windows) -> Result:
    with np.errstate(invalid="ignore"):
        return np.sqrt(_variance(w)), w.counts > 0


def _counted(w: Windows, flags: Bools) -> Floats:
    """How many of each window's samples after its first have ``flags`` set."""
    before = np.concatenate(([0], np.cumsum(flags)))
    first = np.minimum(w.lo + 1, w.hi)
    return (before[w.hi] - before[first]).astype(np.float64)


def changes(w: Windows) -> Result:
    vs = w.vs
    flags = np.zeros(vs.size, dtype=bool)
    flags[1:] = (vs[1:] != vs[:-1]) & ~(np.isnan(vs[1:]) & np.isnan(vs[:-1]))
    return _counted(w, flags), w.counts > 0


def resets(w: Windows) -> Result:
    vs = w.vs
    flags = np.zeros(vs.size, dtype=bool)
    flags[1:] = vs[1:] < vs[:-1]
    return _counted(w, flags), w.counts > 0


def _extrapolated_rate(w: Windows, is_counter: bool, is_rate: bool) -> Result:
    ok = w.counts >= 2
    lo, last_i = np.where(ok, w.lo, 0), np.where(ok, w.hi - 1, 0)
    first, last = w.vs[lo], w.vs[last_i]
    result = last - first
    if is_counter:
        result = _add_resets(w, result, ok)
    t0, t1 = w.ts[lo], w.ts[last_i]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        to_start = (t0 - w.starts) / 1000
        to_end = (w.ends - t1) / 1000
        sampled = (t1 - t0) / 1000
        average = sampled / np.maximum(w.counts - 1, 1)
        if is_counter:
            to_zero = sampled * (first / result)
            capped = (result > 0) & (first >= 0) & (to_zero < to_start)
            to_start = np.where(capped, to_zero, to_start)
        threshold = average * 1.1
        extrapolate_to = sampled + np.where(to_start < threshold, to_start, average / 2)
        extrapolate_to = extrapolate_to + np.where(to_end < threshold, to_end, average / 2)
        factor = extrapolate_to / sampled
        if is_rate:
            factor = factor / range_functions.duration_seconds(w.range_ms)
        return result * factor, ok


def _add_resets(w: Windows, result: Floats, ok: Bools) -> Floats:
    """Add back the value before each drop, one by one in order as Prometheus does (only the
    few windows holding a counter reset need the loop)."""
    vs = w.vs
    drops = np.zeros(vs.size, dtype=bool)
    drops[1:] = vs[1:] < vs[:-1]
    counted = _counted(w, drops)
    result = result.copy()
    at = np.flatnonzero(drops)
    for i in np.flatnonzero(ok & (counted > 0)).tolist():
        total = float(result[i])
        first, last = np.searchsorted(at, [w.lo[i] + 1, w.hi[i]])
        for j in at[first:last].tolist():
            total += float(vs[j - 1])
        result[i] = total
    return result


def rate(w: Windows) -> Result:
    return _extrapolated_rate(w, is_counter=True, is_rate=True)


def increase(w: Windows) -> Result:
    return _extrapolated_rate(w, is_counter=True, is_rate=False)


def delta(w: Windows) -> Result:
    return _extrapolated_rate(w, is_counter=False, is_rate=False)


def _instant_value(w: Windows, is_rate: bool) -> Result:
    ok = w.counts >= 2
    i = np.where(ok, w.hi - 1, 1)
    last, previous = w.vs[i], w.vs[i - 1]
    result = np.where(last < previous, last, last - previous) if is_rate else last - previous
    interval = w.ts[i] - w.ts[i - 1]
    ok = ok & (interval != 0)
    if is_rate:
        with np.errstate(invalid="ignore", divide="ignore"):
            result = result / (interval / 1000)
    return result, ok


def irate(w: Windows) -> Result:
    return _instant_value(w, is_rate=True)


def idelta(w: Windows) -> Result:
    return _instant_value(w, is_rate=False)


def _regression(w: Windows, intercept_at: Ints) -> tuple[Floats, Floats]:
    """Kahan-compensated least squares (slope, intercept), x in seconds from ``intercept_at``."""
    sums = np.zeros((4, w.lo.size))
    const_y = np.ones(w.lo.size, dtype=bool)
    init_y = w.vs[np.where(w.counts > 0, w.lo, 0)]
    for part, idx, valid in _parts(w):
        v = np.where(valid, w.vs[idx], 0.0)
        x = np.where(valid, (w.ts[idx] - intercept_at[part][None, :]) / 1e3, 0.0)
        const_y[part] = ~((v != init_y[part][None, :]) & valid).any(axis=0)
        for row, grid in enumerate((x, v, x * v, x * x)):
            total, c = _compensated(grid)
            sums[row, part] = total + c
    sum_x, sum_y, sum_xy, sum_x2 = sums
    n = w.counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cov_xy = sum_xy - sum_x * sum_y / n
        var_x = sum_x2 - sum_x * sum_x / n
        slope = cov_xy / var_x
        intercept = sum_y / n - slope * sum_x / n
    inf_y = np.isinf(init_y)
    slope = np.where(const_y, np.where(inf_y, np.nan, 0.0), slope)
    intercept = np.where(const_y, np.where(inf_y, np.nan, init_y), intercept)
    return slope, intercept


def deriv(w: Windows) -> Result:
    first = w.ts[np.where(w.counts > 0, w.lo, 0)]
    return _regression(w, first)[0], w.counts >= 2


def predict_linear(w: Windows) -> Result:
    slope, intercept = _regression(w, w.evals)
    return slope * w.params[0] + intercept, w.counts >= 2


def per_window(name: str, w: Windows) -> Result:
    """Any range function, the scalar way: one call per non-empty window."""
    fn = RANGE_FUNCTIONS[name]
    values = np.zeros(w.lo.size)
    present = np.zeros(w.lo.size, dtype=bool)
    range_s = range_functions.duration_seconds(w.range_ms)
    ts, vs = w.ts.tolist(), w.vs.tolist()
    for i in np.flatnonzero(w.counts > 0):
        lo, hi = int(w.lo[i]), int(w.hi[i])
        params = (float(p[i]) for p in w.params)
        window = Window(
            int(w.starts[i]), int(w.ends[i]), w.range_ms, range_s, int(w.evals[i]), *params
        )
        value = fn(ts[lo:hi], vs[lo:hi], window)
        if value is not None:
            values[i], present[i] = value, True
    return values, present


VECTORISED: dict[str, Callable[[Windows], Result]] = {
    "rate": rate,
    "increase": increase,
    "delta": delta,
    "irate": irate,
    "idelta": idelta,
    "deriv": deriv,
    "predict_linear": predict_linear,
    "sum_over_time": sum_over_time,
    "avg_over_time": avg_over_time,
    "min_over_time": min_over_time,
    "max_over_time": max_over_time,
    "count_over_time": count_over_time,
    "last_over_time": last_over_time,
    "present_over_time": present_over_time,
    "stddev_over_time": stddev_over_time,
    "stdvar_over_time": stdvar_over_time,
    "changes": changes,
    "resets": resets,
}


def evaluate(name: str, w: Windows) -> Result:
    """``name`` over every window: (values, whether each window has a result)."""
    fn = VECTORISED.get(name)
    if fn is None:
        return per_window(name, w)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return fn(w)
