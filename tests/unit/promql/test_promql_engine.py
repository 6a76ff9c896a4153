"""Engine entry points (instant / range), errors, and the Prometheus API JSON shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from codequal.tsdb.promql import (
    Engine,
    InMemorySource,
    Labels,
    Matrix,
    PromQLError,
    Sample,
    Scalar,
    Series,
    String,
    Vector,
    format_value,
    to_prometheus_json,
)

MINUTE = 60_000

MakeEngine = Callable[..., Any]


def test_range_query_stitches_steps_into_series_sorted_by_labels(
    make_engine: MakeEngine,
) -> None:
    e = make_engine({'x{a="2"}': "0+1x4", 'x{a="1"}': "_ _ 5 6"})
    result = e.engine.range("x * 2", 0, 3 * MINUTE, MINUTE)
    assert [(s.labels.get("a"), s.points()) for s in result] == [
        ("1", [(120_000, 10.0), (180_000, 12.0)]),
        ("2", [(0, 0.0), (60_000, 2.0), (120_000, 4.0), (180_000, 6.0)]),
    ]


def test_range_query_of_a_scalar_is_one_labelless_series(make_engine: MakeEngine) -> None:
    e = make_engine({})
    (series,) = e.engine.range("time() * 2", 0, 2 * MINUTE, MINUTE)
    assert series.labels == Labels()
    assert series.points() == [(0, 0.0), (60_000, 120.0), (120_000, 240.0)]


def test_range_query_rejects_range_vector_expressions(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1"})
    with pytest.raises(PromQLError, match='invalid expression type "range vector"'):
        e.engine.range("x[5m]", 0, MINUTE, MINUTE)


def test_range_query_rejects_a_non_positive_step(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1"})
    with pytest.raises(PromQLError, match="step"):
        e.engine.range("x", 0, MINUTE, 0)


def test_parse_errors_carry_the_parser_message() -> None:
    with pytest.raises(PromQLError, match="unclosed left parenthesis"):
        Engine(InMemorySource()).instant("sum(x", 0)


def test_type_errors_are_worded_like_prometheus() -> None:
    with pytest.raises(PromQLError) as err:
        Engine(InMemorySource()).instant("rate(x)", 0)
    assert err.value.message == (
        'expected type range vector in call to function "rate", got instant vector'
    )


def test_functions_the_engine_lacks_are_reported_by_name() -> None:
    with pytest.raises(PromQLError, match='function "sort_by_label" is not supported'):
        Engine(InMemorySource()).instant('sort_by_label(x, "a")', 0)


def test_string_literal_evaluates_to_a_string(make_engine: MakeEngine) -> None:
    assert make_engine({}).instant('"hello"', 5000) == String("hello", 5000)


def test_source_is_asked_only_for_the_window_the_query_needs() -> None:
    calls: list[tuple[int, int]] = []

    class Recording(InMemorySource):
        def select(self, matchers: Any, start: int, end: int) -> list[Series]:
            calls.append((start, end))
            return super().select(matchers, start, end)

    Engine(Recording()).range("rate(x[5m] offset 1m)", 10 * MINUTE, 20 * MINUTE, MINUTE)
    assert calls == [(4 * MINUTE, 19 * MINUTE)]


def test_vector_json_matches_the_prometheus_api_shape() -> None:
    vector = Vector([Sample(Labels.of({"__name__": "up", "job": "a"}), 1.0, 1_435_781_451_781)])
    assert to_prometheus_json(vector) == {
        "resultType": "vector",
        "result": [{"metric": {"__name__": "up", "job": "a"}, "value": [1435781451.781, "1"]}],
    }


def test_matrix_scalar_and_string_json_shapes() -> None:
    matrix = Matrix([Series(Labels.of({"a": "1"}), [1000, 2500], [0.5, 2.0])])
    assert to_prometheus_json(matrix) == {
        "resultType": "matrix",
        "result": [{"metric": {"a": "1"}, "values": [[1, "0.5"], [2.5, "2"]]}],
    }
    assert to_prometheus_json(Scalar(3.0, 2000)) == {"resultType": "scalar", "result": [2, "3"]}
    assert to_prometheus_json(String("s", 2000)) == {"resultType": "string", "result": [2, "s"]}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
        (0.1, "0.1"),
        (100.0, "100"),
        (-0.0, "-0"),
        (1e-7, "1e-07"),
        (1.5e21, "1.5e+21"),
        (1e20, "100000000000000000000"),
        (1 / 3, "0.3333333333333333"),
    ],
)
def test_values_are_formatted_like_prometheus(value: float, text: str) -> None:
    assert format_value(value) == text


RANGE_CONSISTENCY_SERIES = {
    'c{i="1"}': "0+7x20 3+7x20 _x5 9+1.5x30",
    'c{i="2"}': "_x10 100+0.5x40 stale _x5 1+1x20",
    'g{i="1"}': "5 3 8 -2 0.5 1e3 7 7 7 -4.25 12 9 1 0 3 2.2+0.7x60",
}


@pytest.mark.parametrize(
    "query",
    [
        "rate(c[5m])",
        "increase(c[3m] offset 2m)",
        "predict_linear(g[10m], 600)",
        "quantile_over_time(0.3, g[7m])",
        "last_over_time(c[4m])",
        "sum(rate(c[2m]))",
        "max_over_time(rate(c[5m])[10m:1m])",
        "absent_over_time(c[2m])",
        'rate({__name__=~"c|x"}[5m])',
    ],
)
def test_range_query_equals_instant_queries_at_each_step(
    make_engine: MakeEngine, query: str
) -> None:
    e = make_engine(RANGE_CONSISTENCY_SERIES)
    start, end, step = 90_000, 80 * MINUTE, 150_000
    expected: dict[Labels, list[tuple[int, float]]] = {}
    for t in range(start, end + 1, step):
        for sample in e.instant(query, t):
            expected.setdefault(sample.labels, []).append((t, sample.value))
    result = e.engine.range(query, start, end, step)
    assert {s.labels: s.points() for s in result} == expected


def test_range_query_rejects_colliding_series_like_instant_queries(
    make_engine: MakeEngine,
) -> None:
    e = make_engine(RANGE_CONSISTENCY_SERIES)
    with pytest.raises(PromQLError, match="same labelset"):
        e.engine.range('rate({__name__=~"c|g"}[5m])', 0, 10 * MINUTE, MINUTE)
