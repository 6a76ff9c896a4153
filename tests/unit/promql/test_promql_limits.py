"""Query limits: hostile queries are refused before they cost memory or time, with
Prometheus's messages and error types."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest

from codequal.tsdb.promql import Engine, InMemorySource, PromQLError, Series
from codequal.tsdb.promql.limits import (
    Budget,
    QueryCanceled,
    QueryLimits,
    QueryTimeout,
    QueryTooLarge,
    TooManySamples,
    check_depth,
)
from codequal.tsdb.promql.notation import load_series

MINUTE = 60_000


class CountingSource(InMemorySource):
    """Records how many selections were made (a refused query must make none)."""

    def __init__(self, *series: Series) -> None:
        super().__init__(series)
        self.selections = 0

    def select(self, matchers: Any, start: int, end: int) -> list[Series]:
        self.selections += 1
        return super().select(matchers, start, end)


def up_source(points: int = 60, series: int = 1) -> CountingSource:
    return CountingSource(
        *(load_series(f'up{{i="{i}"}}', f"1+1x{points - 1}", 15_000) for i in range(series))
    )


@pytest.mark.parametrize("query", ["rate(up[1d:1ms])", "max_over_time(up[1y:1ms])"])
def test_subqueries_with_millions_of_steps_are_refused_before_evaluating(query: str) -> None:
    source = up_source()
    with pytest.raises(QueryTooLarge, match="11,000 points per timeseries") as err:
        Engine(source).instant(query, 10 * MINUTE)
    assert err.value.error_type == "bad_data"
    assert source.selections == 0


def test_a_range_query_over_11000_points_per_series_is_refused() -> None:
    source = up_source()
    with pytest.raises(QueryTooLarge, match="11,000 points"):
        Engine(source).range("up", 0, 11_000_000, 1000)
    assert source.selections == 0
    assert len(Engine(source).range("up", 0, 10_999_000, 1000)) == 1


@pytest.mark.parametrize(
    "query",
    [
        "sum(" * 5000 + "up" + ")" * 5000,
        "up" + " + up" * 5000,  # the parser's own stack overflows on this: refused unparsed
        "(" * 5000 + "up" + ")" * 5000,
        "up" + " or up" * 300,
    ],
)
def test_deeply_nested_queries_are_refused_before_parsing(query: str) -> None:
    with pytest.raises(QueryTooLarge, match="nested too deeply") as err:
        Engine(up_source()).instant(query, MINUTE)
    assert err.value.error_type == "bad_data"


def test_ordinary_nesting_and_label_values_with_operators_are_not_counted() -> None:
    check_depth('sum by (job) (rate(http_requests_total{path=~"/a+b*(c)-d"}[5m])) > 0.5')
    query = "sum(" * 60 + 'up{i="0"} * 2 + 1' + ")" * 60
    assert Engine(up_source()).instant(query, MINUTE)


def test_a_selection_over_the_sample_limit_fails_as_prometheus_does() -> None:
    engine = Engine(up_source(points=100, series=3), limits=QueryLimits(max_samples=250))
    with pytest.raises(TooManySamples) as err:
        engine.instant("count_over_time(up[1h])", 30 * MINUTE)
    assert err.value.error_type == "execution"
    assert err.value.message == (
        "query processing would load too many samples into memory in query execution"
    )
    assert engine.instant("count_over_time(up[1h])", 10 * MINUTE)  # 3 x 41 samples fit


def test_subquery_points_count_against_the_sample_limit() -> None:
    engine = Engine(up_source(points=10), limits=QueryLimits(max_samples=3000))
    with pytest.raises(TooManySamples):  # 3 601 steps, evaluated as one column
        engine.instant("max_over_time(up[1h:1s])", 5 * MINUTE)
    assert engine.instant("max_over_time(up[20m:1s])", 5 * MINUTE)  # 1 201 steps


def test_a_sliding_subquery_releases_the_points_no_later_window_needs() -> None:
    # 5 760 samples loaded, 1 381 result points (twice: as a column, then as the result),
    # at most twice the subquery's 241 points held at once: 9 000 in all. Keeping every
    # subquery point (5 761 over the whole range) would need 12 900.
    source = up_source(points=60 * 4 * 24)
    engine = Engine(source, limits=QueryLimits(max_samples=9500))
    result = engine.range("max_over_time(up[1h:15s])", 3_600_000, 86_400_000, 60_000)
    (series,) = result
    assert len(series.timestamps) == 1381
    assert series.values[-1] == 5760.0


def test_a_query_past_its_timeout_stops_with_prometheus_message() -> None:
    ticks = count()
    engine = Engine(
        up_source(points=400),
        limits=QueryLimits(timeout_seconds=2.5),
        clock=lambda: float(next(ticks)),  # one second per check
    )
    with pytest.raises(QueryTimeout, match="query timed out in expression evaluation") as err:
        engine.range("up", 0, 100 * MINUTE, MINUTE)
    assert err.value.error_type == "timeout"


def test_a_cancelled_query_stops_at_its_next_check() -> None:
    source = up_source()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(QueryCanceled, match="query was canceled"):
        Engine(source).range("max_over_time(up[10m:1s])", 0, 10 * MINUTE, MINUTE, cancel)
    assert source.selections == 0


def test_limits_are_promql_errors_so_rule_evaluation_reports_them() -> None:
    for error in (QueryTimeout(), QueryCanceled(), TooManySamples()):
        assert isinstance(error, PromQLError)


def test_budget_release_gives_room_back() -> None:
    budget = Budget(QueryLimits(max_samples=10), clock=iter(range(10**6)).__next__)
    budget.charge(10)
    with pytest.raises(TooManySamples):
        budget.charge(1)
    budget.release(5)
    budget.charge(4)
    assert budget.remaining() == 0


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before
