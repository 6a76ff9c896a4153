"""Instant and range selectors: lookback, staleness, windows, matchers, offset and @."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codequal.tsdb.promql import Matrix

MINUTE = 60_000

MakeEngine = Callable[..., Any]


def test_instant_selector_returns_latest_sample_within_lookback(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1 2 3"})
    assert e.values("x", 2 * MINUTE + 30_000) == {'{__name__="x"}': 3}


def test_sample_exactly_lookback_old_is_still_visible(make_engine: MakeEngine) -> None:
    # Prometheus 2.x's lookback window is closed: [t - 5m, t].
    e = make_engine({"x": "7"})
    assert e.values("x", 5 * MINUTE) == {'{__name__="x"}': 7}
    assert e.values("x", 5 * MINUTE + 1) == {}


def test_lookback_delta_is_configurable(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "7"}, lookback_delta_ms=MINUTE)
    assert e.values("x", MINUTE) == {'{__name__="x"}': 7}
    assert e.values("x", 2 * MINUTE) == {}


def test_stale_marker_hides_the_series_at_once(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1 2 stale _ 5"})
    assert e.values("x", 2 * MINUTE) == {}
    assert e.values("x", 3 * MINUTE) == {}
    assert e.values("x", 4 * MINUTE) == {'{__name__="x"}': 5}


def test_range_selector_skips_stale_markers(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1 2 stale _ 5"})
    assert e.value("count_over_time(x[10m])", 4 * MINUTE) == 3  # 1, 2 and 5


def test_range_selector_window_is_closed_at_both_ends(make_engine: MakeEngine) -> None:
    # Samples at 0..5m; the window (0, 5m] would hold 5, Prometheus 2.x's [0, 5m] holds 6.
    e = make_engine({"x": "0+1x10"})
    assert e.value("count_over_time(x[5m])", 5 * MINUTE) == 6


def test_top_level_range_selector_returns_raw_samples(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "0+1x10"})
    result = e.instant("x[2m]", 5 * MINUTE)
    assert isinstance(result, Matrix)
    (series,) = result
    assert series.points() == [(180_000, 3.0), (240_000, 4.0), (300_000, 5.0)]


def test_offset_shifts_the_evaluation_back(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0+1x10"})
    assert e.value("x offset 2m", 5 * MINUTE) == 3
    assert e.value("x offset -2m", 5 * MINUTE) == 7


def test_at_pins_the_evaluation_time(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0+1x10"})
    assert e.value("x @ 120", 9 * MINUTE) == 2
    assert e.value("x @ 240 offset 1m", 9 * MINUTE) == 3


def test_at_start_and_end_refer_to_the_range_query_bounds(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "0+1x10"})
    result = e.engine.range("x @ start() + x @ end()", MINUTE, 3 * MINUTE, MINUTE)
    (series,) = result
    assert list(series.values) == [4.0, 4.0, 4.0]


def test_equality_matchers_select_exact_values(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "1", 'x{a="2"}': "2"})
    assert e.values('x{a="1"}', 0) == {'{__name__="x", a="1"}': 1}
    assert e.values('x{a!="1"}', 0) == {'{__name__="x", a="2"}': 2}


def test_regex_matchers_are_fully_anchored(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="ab"}': "1", 'x{a="b"}': "2"})
    assert e.values('x{a=~"a"}', 0) == {}
    assert e.values('x{a=~"a.*"}', 0) == {'{__name__="x", a="ab"}': 1}
    assert e.values('x{a!~"a"}', 0) == {'{__name__="x", a="ab"}': 1, '{__name__="x", a="b"}': 2}


def test_missing_label_matches_as_empty_string(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "1", "x": "2"})
    assert e.values('x{a=~".*"}', 0) == {'{__name__="x", a="1"}': 1, '{__name__="x"}': 2}
    assert e.values('x{a!=""}', 0) == {'{__name__="x", a="1"}': 1}
    assert e.values('x{a=""}', 0) == {'{__name__="x"}': 2}


def test_name_can_be_matched_by_regex(make_engine: MakeEngine) -> None:
    e = make_engine({"foo_total": "1", "bar_total": "2", "baz": "3"})
    assert set(e.values('{__name__=~".*_total"}', 0)) == {
        '{__name__="foo_total"}',
        '{__name__="bar_total"}',
    }


def test_regex_digit_class_is_ascii_only_like_re2(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="\u0661"}': "1"})  # ARABIC-INDIC DIGIT ONE
    assert e.values(r'x{a=~"\\d"}', 0) == {}


def test_regex_alternation_is_anchored_as_a_whole(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="ab"}': "1"})
    assert e.values('x{a=~"a|ab"}', 0) == {'{__name__="x", a="ab"}': 1}
    assert e.values('x{a=~"b|a"}', 0) == {}


def test_regex_case_insensitive_flag(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="API"}': "1"})
    assert e.values('x{a=~"(?i)api"}', 0) == {'{__name__="x", a="API"}': 1}
