"""Functions over range vectors, with the expected values worked out by hand."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

MINUTE = 60_000
SECOND = 1000

MakeEngine = Callable[..., Any]


def test_rate_over_a_fully_covered_window_is_the_plain_slope(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0+10x10"})
    # Prometheus scales by (extrapolated / sampled / range), so 50 * (1 / 300), not 50 / 300.
    assert e.value("rate(x[5m])", 5 * MINUTE) == 50 * (1 / 300)


def test_rate_extrapolates_to_window_edges_within_one_interval(make_engine: MakeEngine) -> None:
    # Window [30s, 5m30s] holds 1m..5m (10..50): 40 over 240 s, stretched to 300 s.
    e = make_engine({"x": "0+10x10"})
    assert e.value("increase(x[5m])", 5 * MINUTE + 30 * SECOND) == 50
    assert e.value("rate(x[5m])", 5 * MINUTE + 30 * SECOND) == pytest.approx(50 / 300)


def test_rate_extrapolates_only_half_an_interval_past_a_long_gap(
    make_engine: MakeEngine,
) -> None:
    # Samples 0..3m, then nothing: the end is 360 s away (> 1.1 x 60 s), so only 30 s are
    # added there; the start is clamped to the counter's zero point (the first value is 0).
    e = make_engine({"x": "0+10x3"})
    assert e.value("increase(x[10m])", 9 * MINUTE) == 30 * 210 / 180


def test_rate_never_extrapolates_a_counter_below_zero(make_engine: MakeEngine) -> None:
    # First sample 0.5 at 1m, slope 40 per 240 s: zero is 3 s before it, closer than the
    # 30 s to the window start, so only 3 s are added at the start.
    e = make_engine({"x": "_ 0.5+10x4"})
    assert e.value("increase(x[5m])", 5 * MINUTE + 30 * SECOND) == 40 * (240 + 3 + 30) / 240


def test_counter_reset_adds_back_the_value_before_the_drop(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0 10 20 5 15"})
    assert e.value("increase(x[5m])", 4 * MINUTE) == 15 - 0 + 20
    assert e.value("resets(x[5m])", 4 * MINUTE) == 1


def test_rate_needs_two_samples(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1 _ _ 2"})
    assert e.values("rate(x[1m])", 3 * MINUTE) == {}


def test_irate_uses_the_last_two_samples_and_handles_resets(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0 10 20 5"})
    assert e.value("irate(x[5m])", 2 * MINUTE) == 10 / 60
    assert e.value("irate(x[5m])", 3 * MINUTE) == 5 / 60


def test_delta_and_idelta_treat_drops_as_values(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "10 4 7"})
    assert e.value("delta(x[2m])", 2 * MINUTE) == -3
    assert e.value("idelta(x[2m])", 2 * MINUTE) == 3


def test_deriv_is_the_least_squares_slope_per_second(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0+2x10"})
    assert e.value("deriv(x[5m])", 5 * MINUTE) == pytest.approx(2 / 60)


def test_deriv_of_a_constant_is_exactly_zero(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0.1x10"})
    assert e.value("deriv(x[5m])", 5 * MINUTE) == 0


def test_predict_linear_extrapolates_from_the_evaluation_time(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0+2x10"})
    assert e.value("predict_linear(x[5m], 60)", 5 * MINUTE) == pytest.approx(12)
    # With an offset the fit uses older samples but is still anchored at the eval time.
    assert e.value("predict_linear(x[5m] offset 1m, 0)", 5 * MINUTE) == pytest.approx(10)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("avg_over_time", 14.5 / 5),
        ("min_over_time", -2),
        ("max_over_time", 8),
        ("sum_over_time", 14.5),
        ("count_over_time", 5),
        ("last_over_time", 0.5),
        ("present_over_time", 1),
        ("stdvar_over_time", 12.04),
        ("stddev_over_time", math.sqrt(12.04)),
    ],
)
def test_over_time_aggregates_every_sample_in_the_window(
    make_engine: MakeEngine, function: str, expected: float
) -> None:
    e = make_engine({"x": "5 3 8 -2 0.5"})
    assert e.value(f"{function}(x[5m])", 4 * MINUTE) == pytest.approx(expected)


def test_quantile_over_time_interpolates_between_ranks(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "5 3 8 -2 0.5"})  # sorted: -2 0.5 3 5 8
    assert e.value("quantile_over_time(0.5, x[5m])", 4 * MINUTE) == 3
    assert e.value("quantile_over_time(0.375, x[5m])", 4 * MINUTE) == 0.5 + 0.5 * 2.5
    assert e.value("quantile_over_time(2, x[5m])", 4 * MINUTE) == math.inf


def test_last_over_time_keeps_the_metric_name_others_drop_it(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "1 2"})
    assert e.values("last_over_time(x[5m])", MINUTE) == {'{__name__="x", a="1"}': 2}
    assert e.values("max_over_time(x[5m])", MINUTE) == {'{a="1"}': 2}


def test_changes_counts_value_changes(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1 1 2 2 1"})
    assert e.value("changes(x[5m])", 4 * MINUTE) == 2


def test_absent_over_time_reports_one_when_no_sample_in_window(make_engine: MakeEngine) -> None:
    e = make_engine({'x{job="a"}': "1 _x10"})
    assert e.values('absent_over_time(x{job="a"}[5m])', 5 * MINUTE) == {}
    assert e.values('absent_over_time(x{job="a"}[5m])', 6 * MINUTE) == {'{job="a"}': 1}


def test_subquery_steps_are_aligned_to_multiples_of_the_step(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0+1x10"})
    (series,) = e.instant("x[5m:1m]", 5 * MINUTE + 30 * SECOND)
    assert list(series.timestamps) == [60_000, 120_000, 180_000, 240_000, 300_000]
    assert e.value("sum_over_time(x[5m:1m])", 5 * MINUTE + 30 * SECOND) == 1 + 2 + 3 + 4 + 5


def test_subquery_without_step_uses_the_default_step(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0+1x10"}, default_step_ms=2 * MINUTE)
    assert e.value("count_over_time(x[6m:])", 6 * MINUTE) == 4  # 0, 2, 4 and 6 min


def test_subquery_offset_moves_the_window(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0+1x10"})
    assert e.value("max_over_time(x[2m:1m] offset 3m)", 8 * MINUTE) == 5
