"""promtool's input_series notation, expanded exactly as promtool expands it."""

from __future__ import annotations

import math

import pytest

from codequal.tsdb.promql import (
    Labels,
    PromQLError,
    is_stale,
    load_series,
    parse_duration_ms,
    parse_series_labels,
    parse_series_values,
)


def test_a_plus_b_x_n_yields_n_plus_one_values() -> None:
    assert parse_series_values("0+10x5") == [0, 10, 20, 30, 40, 50]


def test_a_minus_b_x_n_counts_down() -> None:
    assert parse_series_values("-2-1x3") == [-2, -3, -4, -5]


def test_a_x_n_repeats_the_value_n_plus_one_times() -> None:
    assert parse_series_values("7x2") == [7, 7, 7]


def test_gaps_single_and_repeated() -> None:
    # "_xN" is N gaps, unlike "axN" which is N+1 values.
    assert parse_series_values("1 _ 2 _x3 3") == [1, None, 2, None, None, None, 3]


def test_stale_is_the_prometheus_staleness_marker() -> None:
    (stale,) = parse_series_values("stale")
    assert stale is not None
    assert is_stale(stale)
    assert not is_stale(math.nan)


def test_increments_accumulate_by_repeated_addition_like_promtool() -> None:
    # Adding 0.1 eight times rounds to 0.7999999999999999; 8 * 0.1 would be 0.8.
    values = parse_series_values("0+0.1x8")
    assert values[8] == 0.7999999999999999
    assert values[8] != 8 * 0.1


def test_numbers_may_be_scientific_signed_hex_inf_and_nan() -> None:
    values = parse_series_values("1e3 +2 -0.5 0x10 Inf -Inf NaN")
    assert values[:5] == [1000, 2, -0.5, 16, math.inf]
    assert values[5] == -math.inf
    assert values[6] is not None and math.isnan(values[6]) and not is_stale(values[6])


def test_invalid_value_is_reported_with_the_offending_item() -> None:
    with pytest.raises(PromQLError, match="'abc'"):
        parse_series_values("1 abc 2")


def test_series_labels_include_the_metric_name() -> None:
    labels = parse_series_labels('http_requests_total{job="api", code="200"}')
    assert labels == Labels.of({"__name__": "http_requests_total", "job": "api", "code": "200"})


def test_series_labels_reject_non_equality_matchers() -> None:
    with pytest.raises(PromQLError, match="only '='"):
        parse_series_labels('up{job=~"a.*"}')


def test_load_series_places_sample_i_at_i_times_interval_skipping_gaps() -> None:
    series = load_series('up{job="a"}', "1 _ 0 1", 15_000)
    assert series.points() == [(0, 1.0), (30_000, 0.0), (45_000, 1.0)]


@pytest.mark.parametrize(
    ("text", "ms"), [("0", 0), ("1m", 60_000), ("1h30m", 5_400_000), ("1500ms", 1500)]
)
def test_durations_parse_to_milliseconds(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5", "-1m", "1m1h"])
def test_invalid_durations_are_rejected(text: str) -> None:
    with pytest.raises(PromQLError, match="invalid duration"):
        parse_duration_ms(text)
