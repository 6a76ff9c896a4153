"""The news gate of the baseline detectors: a crossing is news until it is the series' habit."""

from __future__ import annotations

import math
import random

from codequal.analytics.anomaly import (
    FailureRateParams,
    RobustZParams,
    ScanParams,
    detect_failure_rate,
    detect_latency_drift,
    detect_robust_z,
)
from codequal.analytics.anomaly.base import DAY, HOUR, WEEK
from codequal.analytics.anomaly.news import NewsGate, exceedance

from .conftest import STEP, Noise, at, series

DAY_SAMPLES = int(DAY / STEP)


def gate() -> NewsGate:
    return NewsGate(memory=2 * WEEK, repeats=5, margin=1.0, merge_gap=2 * HOUR)


def excursion(g: NewsGate, t: float, e: float) -> bool:
    """One anomalous sample at ``t``, then quiet long enough to end the excursion."""
    news = g.observe(t, e, "up" if e > 0 else "down")
    g.observe(t + 3 * HOUR, 0.0, None)
    return news


def test_exceedance_is_one_at_the_band_edge_and_signed_by_side() -> None:
    assert exceedance(150.0, 100.0, 50.0, 150.0) == 1.0
    assert exceedance(200.0, 100.0, 50.0, 150.0) == 2.0
    assert exceedance(25.0, 100.0, 50.0, 150.0) == -1.5
    assert exceedance(25.0, 100.0, -math.inf, 150.0) == 0.0  # no lower bound: no side


def test_the_sixth_excursion_of_a_size_is_a_habit_and_a_far_larger_one_is_news() -> None:
    g = gate()
    assert [excursion(g, k * DAY, 3.0) for k in range(6)] == [True] * 5 + [False]
    assert not excursion(g, 6 * DAY, 5.9)  # under twice the fifth largest: still the habit
    assert excursion(g, 7 * DAY, 6.5)


def test_excursions_older_than_the_memory_are_forgotten() -> None:
    g = gate()
    for k in range(5):
        excursion(g, k * HOUR * 4, 3.0)
    assert not excursion(g, DAY, 3.0)
    assert excursion(g, 3 * WEEK, 3.0)


def test_each_side_has_its_own_habit() -> None:
    g = gate()
    for k in range(5):
        excursion(g, k * DAY, 3.0)
    assert excursion(g, 6 * DAY, -3.0)


def test_a_shift_adopted_as_the_new_normal_leaves_no_habit_behind() -> None:
    g = gate()
    for k in range(4):
        excursion(g, k * DAY, 3.0)
    g.observe(5 * DAY, 3.0, "up")  # the start of a shift...
    g.forget()  # ...adopted as the new normal: measured against a level that is gone
    assert excursion(g, 6 * DAY, 3.0)


def test_a_failure_spike_that_recurs_a_few_times_a_fortnight_alarms_every_time() -> None:
    n = 14 * DAY_SAMPLES
    rng = random.Random(5)  # noqa: S311 - test data, not secrets
    ratios = [rng.gauss(0.02, 0.002) for _ in range(n)]
    spikes = [d * DAY_SAMPLES + 150 for d in (3, 5, 8, 11)]
    for i in spikes:
        ratios[i] = 0.08
    found = detect_failure_rate(series(ratios, [1000.0] * n), at(n - 1))
    assert [a.start for a in found] == [at(i) for i in spikes]


def test_a_daily_burst_is_news_five_times_then_only_when_it_dwarfs_the_habit(
    noise: Noise,
) -> None:
    n = 14 * DAY_SAMPLES
    values = noise(n, 100, 0.05)
    bursts = [d * DAY_SAMPLES + 100 for d in range(3, 13)]
    for i in bursts:
        values[i] = 200.0
    values[13 * DAY_SAMPLES + 100] = 700.0
    found = detect_robust_z(series(values), at(n - 1))
    assert [a.start for a in found] == [at(i) for i in bursts[:5]] + [at(13 * DAY_SAMPLES + 100)]


def test_heavy_tailed_noise_crosses_the_bands_often_but_raises_few_alarms() -> None:
    # Pure noise with a Pareto tail: the band alone is crossed hundreds of times a fortnight.
    rng = random.Random(11)  # noqa: S311 - test data, not secrets
    s = series([10 * rng.paretovariate(2.0) for _ in range(14 * DAY_SAMPLES)])
    now = s.timestamps[-1]
    every_crossing = RobustZParams(scan=ScanParams(repeats=10_000, merge_gap=STEP))
    assert len(detect_robust_z(s, now, every_crossing)) > 300
    for detect in (detect_robust_z, detect_latency_drift, detect_failure_rate):
        found = detect(s, now)
        assert len(found) <= 7, (detect.__name__, [a.explanation for a in found])


def test_an_incident_is_one_anomaly_dated_at_its_first_alarm() -> None:
    n = 4 * DAY_SAMPLES
    ratios = [0.02] * n
    start = 3 * DAY_SAMPLES
    for k in range(36):  # three hours of failures, back to normal every third sample
        ratios[start + k] = 0.02 if k % 3 == 2 else 0.2
    [found] = detect_failure_rate(series(ratios, [1000.0] * n), at(n - 1), FailureRateParams())
    assert (found.start, found.end) == (at(start), at(start + 34))
    assert found.status == "closed"
    assert "Detected at 2024-01-04T00:00:00.000Z; 24 anomalous samples" in found.explanation
