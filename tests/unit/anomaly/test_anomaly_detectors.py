"""The baseline detectors: each finds its planted anomaly, explains it, and keeps quiet on noise."""

from __future__ import annotations

import math

from codequal.analytics.anomaly import (
    DETECTORS,
    FailureRateParams,
    LatencyDriftParams,
    RobustZParams,
    ScanParams,
    TimeSeries,
    detect_failure_rate,
    detect_latency_drift,
    detect_robust_z,
)
from codequal.analytics.anomaly.base import DAY, HOUR

from .conftest import STEP, Noise, at, series

DAY_SAMPLES = int(DAY / STEP)


def test_robust_z_finds_a_spike_and_explains_it_with_baseline_band_and_score(
    noise: Noise,
) -> None:
    values = noise(2 * DAY_SAMPLES, 100, 0.05)
    values[400:403] = [200, 210, 190]
    [found] = detect_robust_z(series(values), now=at(len(values) - 1))
    assert (found.start, found.end, found.peak_at) == (at(400), at(402), at(401))
    assert (found.peak, found.direction, found.status) == (210, "up", "closed")
    assert 95 < found.baseline < 105
    assert found.band[0] < found.baseline < found.band[1] < 200
    assert found.score > 10
    assert f"{found.score:.3g} robust z above the baseline" in found.explanation
    assert "median of the trailing 6 h" in found.explanation
    assert "3 anomalous samples" in found.explanation


def test_robust_z_sees_a_drop_as_well_as_a_surge(noise: Noise) -> None:
    values = noise(DAY_SAMPLES, 100, 0.05)
    values[200] = 20
    [found] = detect_robust_z(series(values), now=at(len(values) - 1))
    assert (found.direction, found.start) == ("down", at(200))
    assert "below the baseline" in found.explanation


def test_quiet_noisy_data_gives_no_anomaly_from_any_baseline_detector(noise: Noise) -> None:
    n = 7 * DAY_SAMPLES
    values = noise(n, 100, 0.08)
    ratios = [0.02 * v / 100 for v in values]
    now = at(n - 1)
    assert detect_robust_z(series(values), now) == []
    assert detect_latency_drift(series(values), now) == []
    assert detect_failure_rate(series(ratios, [1000.0] * n), now) == []


def test_failure_rate_flags_more_than_twice_the_baseline_with_traffic(noise: Noise) -> None:
    n = DAY_SAMPLES
    ratios = [0.02] * n
    ratios[200:202] = [0.07, 0.09]
    [found] = detect_failure_rate(series(ratios, [1000.0] * n), now=at(n - 1))
    assert (found.start, found.end, found.peak) == (at(200), at(201), 0.09)
    assert found.baseline == 0.02
    assert math.isinf(found.band[0]) and found.band[1] >= 0.04
    assert math.isclose(found.score, 4.5)
    assert "Failure ratio 9% over 1000 events" in found.explanation
    assert "4.5x its baseline 2%" in found.explanation
    assert found.details == {"ratio_to_baseline": found.score, "events": 1000.0}


def test_failure_rate_at_just_under_twice_the_baseline_is_not_a_spike() -> None:
    n = DAY_SAMPLES
    ratios = [0.02] * n
    ratios[200] = 0.039
    assert detect_failure_rate(series(ratios, [100_000.0] * n), now=at(n - 1)) == []


def test_failure_rate_needs_minimum_traffic_before_it_judges_a_sample() -> None:
    n = DAY_SAMPLES
    ratios = [0.02] * n
    ratios[200] = 0.5  # 2 of 4 analyses failed: a coin toss, not an incident
    weights = [1000.0] * n
    weights[200] = 4
    assert detect_failure_rate(series(ratios, weights), now=at(n - 1)) == []
    weights[200] = 1000
    assert len(detect_failure_rate(series(ratios, weights), now=at(n - 1))) == 1


def test_failure_rate_with_little_traffic_needs_the_excess_to_be_unlikely() -> None:
    n = DAY_SAMPLES
    ratios = [0.02] * n
    ratios[200] = 0.05  # 2 failures of 40: 2.5x the baseline, but 19 % likely by chance
    params = FailureRateParams(scan=ScanParams(min_traffic=10))
    assert detect_failure_rate(series(ratios, [40.0] * n), at(n - 1), params) == []


def test_failure_rate_floors_a_zero_baseline_so_one_failure_is_not_infinite() -> None:
    n = DAY_SAMPLES
    ratios = [0.0] * n
    ratios[200] = 0.004  # one failure in 250
    assert detect_failure_rate(series(ratios), at(n - 1)) == []
    ratios[200] = 0.2
    [found] = detect_failure_rate(series(ratios), at(n - 1))
    assert found.score == 0.2 / FailureRateParams().min_baseline
    assert "floored at 0.5%" in found.explanation


def test_latency_drift_flags_p99_over_one_and_a_half_times_expected(noise: Noise) -> None:
    values = noise(DAY_SAMPLES, 60, 0.05)
    values[250:254] = [95.0, 130.0, 140.0, 100.0]
    [found] = detect_latency_drift(series(values), now=at(len(values) - 1))
    assert (found.start, found.end, found.peak) == (at(250), at(253), 140.0)
    assert 57 < found.baseline < 63
    assert found.band[1] == 1.5 * found.baseline
    assert math.isclose(found.score, 140.0 / found.baseline)
    assert "p99 duration 140 s" in found.explanation
    assert "(1.5x expected, and above every p99 of that baseline)" in found.explanation


def test_latency_drift_ignores_p99s_from_too_few_durations(noise: Noise) -> None:
    values = noise(DAY_SAMPLES, 60, 0.05)
    values[250] = 300.0
    weights = [50.0] * len(values)
    weights[250] = 3
    assert detect_latency_drift(series(values, weights), at(len(values) - 1)) == []


def test_no_verdict_without_minimum_history() -> None:
    assert detect_robust_z(series([1.0, 1.0, 100.0]), now=at(2)) == []
    values = [100.0, 101.0, 99.0] * 4 + [100.0] * 20
    values[11] = 500.0  # sample 12 of the series: less than an hour of history before it
    values[25] = 500.0  # after an hour and 12 samples
    found = detect_robust_z(series(values), now=at(len(values) - 1))
    assert [a.start for a in found] == [at(25)]


def test_minimum_history_is_configurable() -> None:
    values = [100.0, 101.0, 99.0] * 40
    values[100] = 500.0
    strict = RobustZParams(scan=ScanParams(min_history=12 * HOUR))
    assert detect_robust_z(series(values), at(119), strict) == []
    assert len(detect_robust_z(series(values), at(119))) == 1


def test_samples_after_now_are_not_seen_and_an_ongoing_window_is_open(noise: Noise) -> None:
    values = noise(DAY_SAMPLES, 100, 0.05)
    values[200:205] = [300.0] * 5
    [found] = detect_robust_z(series(values), now=at(202))
    assert (found.end, found.status) == (at(202), "open")
    assert "still anomalous at the last sample" in found.explanation


def test_a_level_shift_stops_alerting_after_the_adaptation_time(noise: Noise) -> None:
    n = 14 * DAY_SAMPLES
    values = noise(n, 100, 0.05)
    shift = 8 * DAY_SAMPLES + 10 * 12  # Tuesday 10:00, against a same-hour baseline
    values[shift:] = [v * 2 for v in values[shift:]]
    found = detect_robust_z(series(values), now=at(n - 1))
    assert len(found) == 1, [a.explanation for a in found]
    [adapted] = found
    assert adapted.status == "adapted"
    assert adapted.start == at(shift)
    assert at(shift) + 5 * HOUR <= adapted.end <= at(shift) + 6 * HOUR
    assert "same hour on" in adapted.explanation
    assert "now the new normal (level x2" in adapted.explanation


def test_a_shift_against_the_trailing_window_restarts_the_window(noise: Noise) -> None:
    n = 2 * DAY_SAMPLES
    values = noise(n, 60, 0.05)
    values[DAY_SAMPLES:] = [v * 2 for v in values[DAY_SAMPLES:]]
    [adapted] = detect_latency_drift(series(values), at(n - 1))
    assert adapted.status == "adapted"
    assert "the trailing window restarts at the shift" in adapted.explanation


def test_the_adaptation_time_is_configurable(noise: Noise) -> None:
    n = 2 * DAY_SAMPLES
    values = noise(n, 60, 0.05)
    values[DAY_SAMPLES:] = [v * 2 for v in values[DAY_SAMPLES:]]
    params = LatencyDriftParams(scan=ScanParams(adapt_after=2 * HOUR))
    [adapted] = detect_latency_drift(series(values), at(n - 1), params)
    assert adapted.status == "adapted"
    assert at(DAY_SAMPLES) + 1.5 * HOUR <= adapted.end <= at(DAY_SAMPLES) + 2 * HOUR


def test_a_shift_that_flickers_across_the_threshold_still_adapts(noise: Noise) -> None:
    n = 14 * DAY_SAMPLES
    values = noise(n, 100, 0.05)
    shift = 8 * DAY_SAMPLES
    # +27 % is about the band's edge: noise puts many samples of the new level inside it.
    values[shift:] = [v * 1.27 for v in values[shift:]]
    found = detect_robust_z(series(values), now=at(n - 1))
    assert [a.status for a in found] == ["adapted"], [a.explanation for a in found]
    assert "anomalous samples" in found[0].explanation


def test_a_spike_is_not_learned_as_normal(noise: Noise) -> None:
    values = noise(DAY_SAMPLES, 100, 0.05)
    values[100:110] = [300.0] * 10  # 50 minutes: a long spike, but no shift
    values[200] = 300.0
    found = detect_robust_z(series(values), now=at(len(values) - 1))
    assert [a.start for a in found] == [at(100), at(200)]


def test_seasonal_baseline_finds_what_is_only_unusual_for_the_hour(noise: Noise) -> None:
    n = 10 * DAY_SAMPLES
    wave = [1 + 0.6 * math.cos(2 * math.pi * (i % DAY_SAMPLES) / DAY_SAMPLES) for i in range(n)]
    values = [w * v for w, v in zip(wave, noise(n, 100, 0.03), strict=True)]
    night = 8 * DAY_SAMPLES + DAY_SAMPLES // 2  # 12:00, the trough
    values[night] = 100.0  # the daily mean: normal at 06:00, not at noon
    params = RobustZParams(scan=ScanParams(seasonality="daily"))
    found = detect_robust_z(series(values), at(n - 1), params)
    late = [a for a in found if a.start >= at(3 * DAY_SAMPLES)]
    assert [a.start for a in late] == [at(night)]
    assert "same hour on 8 earlier days" in late[0].explanation


def test_auto_seasonality_compares_weekdays_with_weekdays() -> None:
    # Weekdays at 100, weekends at 50. The first weekend has no weekend before it and is
    # judged against the trailing window (Friday); after that, silence.
    n = 22 * DAY_SAMPLES
    values = [50.0 if (i // DAY_SAMPLES) % 7 >= 5 else 100.0 for i in range(n)]
    [first_weekend] = detect_robust_z(series(values), at(n - 1))
    assert first_weekend.start == at(5 * DAY_SAMPLES)
    assert "trailing window restarts" in first_weekend.explanation


def test_gaps_and_nan_values_are_skipped_not_judged(noise: Noise) -> None:
    values = noise(DAY_SAMPLES, 100, 0.05)
    values[150:160] = [math.nan] * 10
    assert detect_robust_z(series(values), at(len(values) - 1)) == []


def test_every_registered_detector_runs_through_the_protocol(noise: Noise) -> None:
    s = TimeSeries.of([at(i) for i in range(50)], [0.5] * 50)
    for name, detector in DETECTORS.items():
        assert detector.name == name
        assert detector.summary
        assert detector.detect(s, at(49)) == []


def test_latency_drift_gives_no_verdict_against_a_baseline_that_is_not_a_duration() -> None:
    # Idle steps report a p99 of 0 s, and a series that is no latency may sit below zero:
    # a ratio to either is meaningless (it used to print "infx" with a null score).
    zeros = series([0.0] * 200 + [5.0] * 3)
    negative = series([-10.0] * 200 + [-2.0] * 3)
    for s in (zeros, negative):
        assert detect_latency_drift(s, s.timestamps[-1]) == []


def test_latency_drift_needs_the_p99_above_everything_its_baseline_has_shown(
    noise: Noise,
) -> None:
    # A jittery service: p99 often 1.6x its median. That is its normal, not drift.
    values = [60.0 * (1.6 if i % 7 == 0 else 1.0) for i in range(400)]
    assert detect_latency_drift(series(values), at(399)) == []
