"""What a sample is compared against, and when there is enough history to compare at all.

Shared by the detectors that judge each sample against its own past (failure rate, latency
drift, robust z). The baseline is the samples at the same phase in earlier weeks or days when
the history covers enough of them (hour-of-week, then hour-of-day), else a plain trailing
window (reaching back a little further when it holds too few). Either way there must be
``min_history`` seconds and ``min_samples`` samples of it: a verdict from three samples is
noise dressed up as a finding.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple

from codequal.analytics.anomaly.base import DAY, HOUR, MINUTE, WEEK, duration_text

Seasonality = Literal["auto", "none", "daily", "weekly"]
SEASONALITIES: tuple[Seasonality, ...] = ("auto", "none", "daily", "weekly")
# 1.4826 * MAD estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826
# The MAD's efficiency relative to the standard deviation for normal data.
MAD_EFFICIENCY = 0.37


@dataclass(frozen=True)
class ScanParams:
    """When a detector may speak, what it compares against, and when a shift becomes normal.

    Durations are seconds. ``min_traffic`` applies to samples that carry a weight: a sample
    with fewer events behind it is neither judged nor used as baseline. ``seasonality``:
    ``auto`` is the same hour of week once ``min_periods`` weeks are there, else the same hour
    on ``min_periods`` earlier days of the same kind (weekday or weekend), else the trailing
    ``window``; ``weekly`` and ``daily`` (any day) force one; ``none`` is trailing only.
    """

    window: float = 6 * HOUR  # trailing window when there is no seasonal baseline
    min_samples: int = 12
    min_history: float = HOUR
    min_traffic: float = 0.0
    # Anomalous samples closer than this are one incident (a burst that pauses for an hour
    # does not page twice); its alert resolves this long after the last one.
    merge_gap: float = 2 * HOUR
    adapt_after: float = 6 * HOUR  # a shift this long becomes the new normal
    # No alarm until samples have been judged this long: the daily range twice, and the
    # first excursions, whose size the news rule needs to know.
    learn: float = 2 * DAY
    # An anomalous sample alarms only while fewer than `repeats` excursions of the last
    # `memory` went 1 / (1 + margin) as far: 5 in two weeks half as far (see `news`).
    memory: float = 2 * WEEK
    repeats: int = 5
    margin: float = 1.0
    seasonality: Seasonality = "auto"
    # Earlier weeks (or days of the same kind) a seasonal baseline needs. Two is the least that
    # shows a repetition; the threshold widens for the few samples (robust z).
    min_periods: int = 2
    daily_lookback: int = 14  # two weeks hold four weekend days
    weekly_lookback: int = 4
    phase_tolerance: float = 30 * MINUTE  # "same phase" is within this of t - k periods

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "seasonality":
                if value not in SEASONALITIES:
                    raise ValueError(f"seasonality must be one of {SEASONALITIES}, not {value!r}")
            elif f.name in ("min_traffic", "learn"):
                if value < 0:
                    raise ValueError(f"{f.name} must be >= 0, not {value}")
            elif value <= 0:
                raise ValueError(f"{f.name} must be positive, not {value}")


# trailing: the last `window`; weekly: same hour of week; daily: same hour of any day;
# day_type: same hour of days of the same kind (weekday or weekend).
BaselineKind = Literal["trailing", "weekly", "daily", "day_type"]


class History(NamedTuple):
    """The baseline samples for one verdict, their kind, and a phrase saying where from."""

    values: list[float]
    kind: BaselineKind
    basis: str


@dataclass
class Past:
    """What verdicts may draw on; it changes as the walk goes.

    ``values`` may differ from the series' own (re-levelled after a shift was adopted);
    ``usable`` turns off for anomalous samples; ``first`` is the timestamp of the first usable
    sample; the trailing window never reaches back before ``regime_start``, the start of the
    last shift adopted against it.
    """

    timestamps: Sequence[float]
    values: list[float]
    usable: list[bool]
    first: float
    regime_start: float


def select_history(past: Past, i: int, params: ScanParams) -> History | None:
    """Baseline samples for sample ``i`` (earlier, usable ones), or None if there are too few."""
    t = past.timestamps[i]
    if t - past.first < params.min_history:
        return None
    seasonal = _seasonal(past, i, params)
    if seasonal is not None:
        return seasonal
    lo = bisect_left(past.timestamps, max(t - params.window, past.regime_start), 0, i)
    values = [past.values[j] for j in range(lo, i) if past.usable[j]]
    if len(values) < params.min_samples:
        values = _reach_back(past, lo, params.min_samples - len(values)) + values
    if len(values) < params.min_samples:
        return None
    return History(values, "trailing", f"trailing {duration_text(params.window)}")


def _reach_back(past: Past, lo: int, wanted: int) -> list[float]:
    """Up to ``wanted`` usable samples just before ``lo``, within the regime, oldest first.

    The window runs short of usable samples at a step coarser than window / min_samples
    (hourly data) and during a long excursion (its samples are no baseline). Without this
    the first would never be judged and the second would stop being judged until its own
    samples, unjudged, became the baseline. The search is bounded: twice ``wanted`` samples.
    """
    stop = max(bisect_left(past.timestamps, past.regime_start, 0, lo), lo - 2 * wanted)
    older: list[float] = []
    for j in range(lo - 1, stop - 1, -1):
        if past.usable[j]:
            older.append(past.values[j])
            if len(older) == wanted:
                break
    return older[::-1]


def _seasonal(past: Past, i: int, params: ScanParams) -> History | None:
    """Same hour of week, else same hour of day, when the history covers enough periods.

    In ``auto`` the daily baseline only compares weekdays with weekdays and weekend days with
    weekend days (UTC): until there are weeks of history, that is what keeps every Saturday
    from looking like an outage.
    """
    t, span, mode = past.timestamps[i], past.timestamps[i] - past.first, params.seasonality
    if mode in ("auto", "weekly"):
        weeks = [k * WEEK for k in range(1, params.weekly_lookback + 1) if k * WEEK <= span]
        picked = _same_phase(past, i, weeks, params) if len(weeks) >= params.min_periods else []
        if len(picked) >= params.min_samples:
            return History(picked, "weekly", f"same hour of week over {len(weeks)} weeks")
    if mode in ("auto", "daily"):
        weekend = is_weekend(t)
        days = [
            k * DAY
            for k in range(1, params.daily_lookback + 1)
            if k * DAY <= span and (mode == "daily" or is_weekend(t - k * DAY) == weekend)
        ]
        picked = _same_phase(past, i, days, params) if len(days) >= params.min_periods else []
        if len(picked) >= params.min_samples:
            if mode == "daily":
                return History(picked, "daily", f"same hour on {len(days)} earlier days")
            which = "weekend days" if weekend else "weekdays"
            return History(picked, "day_type", f"same hour on {len(days)} earlier {which}")
    return None


def is_weekend(t: float) -> bool:
    """Saturday or Sunday in UTC (1970-01-01 was a Thursday)."""
    return (int(t // DAY) + 3) % 7 >= 5


def _same_phase(past: Past, i: int, offsets: list[float], params: ScanParams) -> list[float]:
    ts, t, tol = past.timestamps, past.timestamps[i], params.phase_tolerance
    out: list[float] = []
    for offset in offsets:
        lo = bisect_left(ts, t - offset - tol, 0, i)
        hi = bisect_right(ts, t - offset + tol, lo, i)
        out.extend(past.values[j] for j in range(lo, hi) if past.usable[j])
    return out


def median_mad(values: Sequence[float]) -> tuple[float, float]:
    """The median and the median absolute deviation from it."""
    centre = statistics.median(values)
    return centre, statistics.median(abs(v - centre) for v in values)


def small_sample_threshold(k: float, n: int) -> float:
    """``k`` widened so a robust z from ``n`` baseline samples errs as rarely as ``k`` would.

    A MAD from a dozen samples is a rough guess at the spread: ``|z| > 4`` on it fires on
    about 1 % of ordinary samples instead of 0.006 %. Treat z as Student-t with the MAD's
    effective degrees of freedom (its efficiency is 37 %) and take the t quantile with the
    normal tail of ``k`` (Cornish-Fisher, two terms). Checked by simulation: 11.9 for n = 12,
    6.9 for 24, 5.2 for 48, 4.5 for 96.
    """
    nu = max(MAD_EFFICIENCY * n, 1.0)
    return k + (k**3 + k) / (4 * nu) + (5 * k**5 + 16 * k**3 + 3 * k) / (96 * nu**2)
