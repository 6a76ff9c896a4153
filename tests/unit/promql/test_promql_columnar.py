"""Range queries (evaluated a column at a time) answer bit for bit what instant queries
(step by step, themselves pinned to promtool's answers) give at each step."""

from __future__ import annotations

import math
import struct

import pytest

from codequal.tsdb.promql import Engine, PromQLError, Scalar, Vector, source_from_input_series
from codequal.tsdb.promql.limits import QueryLimits

from .test_promql_vs_promtool import (
    EXPRESSIONS,
    FAST_EXPRESSIONS,
    FAST_SERIES,
    SERIES,
)

MINUTE = 60_000
EXTRA = [
    "sum_over_time(gauge[7m])",
    "stddev_over_time(http_requests_total[10m])",
    "quantile_over_time(0.9, gauge[10m])",
    "holt_winters(gauge[10m], 0.3, 0.6)",
    "topk(2, gauge)",
    "absent(nonexistent)",
    "gauge and on(job) http_requests_total",
    "http_requests_total unless gauge",
    "clamp(gauge, 1, 4) + ceil(gauge) - sqrt(abs(gauge))",
    "-gauge % 3",
    "scalar(sum(gauge)) * 2",
    "time() - 60",
    "vector(time()) > 600",
    "minute(vector(time()))",
    'label_replace(gauge, "x", "$1", "instance", "(.*)")',
    "gauge atan2 gauge",
    "2 ^ gauge > bool 3",
    "count by (job) (http_requests_total) == bool 2",
    "predict_linear(gauge[5m], 2 * 300)",
    "quantile_over_time(scalar(max(load)) / 20, gauge[5m])",
    "holt_winters(gauge[10m], 0.3, time() / 1e6)",
    "holt_winters(gauge[10m], 0.3, 2)",
]


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _engine(series: list[tuple[str, str]], interval_ms: int) -> Engine:
    entries = [{"series": s, "values": v} for s, v in series]
    return Engine(source_from_input_series(entries, interval_ms), default_step_ms=MINUTE)


def _check(engine: Engine, query: str, start: int, end: int, step: int) -> None:
    try:
        matrix = engine.range(query, start, end, step)
    except PromQLError as exc:
        with pytest.raises(PromQLError) as instant_error:
            for t in range(start, end + 1, step):
                engine.instant(query, t)
        assert instant_error.value.message == exc.message
        return
    got = {
        (str(s.labels), t): _bits(v)
        for s in matrix
        for t, v in zip(s.timestamps, s.values, strict=True)
    }
    expected = {}
    for t in range(start, end + 1, step):
        result = engine.instant(query, t)
        if isinstance(result, Scalar):
            expected[("{}", t)] = _bits(result.value)
        else:
            assert isinstance(result, Vector)
            expected.update({(str(s.labels), t): _bits(s.value) for s in result})
    assert got == expected


@pytest.mark.parametrize("query", EXPRESSIONS + EXTRA)
def test_range_queries_equal_instant_queries_bit_for_bit(query: str) -> None:
    _check(_engine(SERIES, MINUTE), query, 0, 46 * MINUTE, MINUTE)


@pytest.mark.parametrize("query", FAST_EXPRESSIONS)
def test_range_queries_over_irregular_scrapes_equal_instant_queries(query: str) -> None:
    _check(_engine(FAST_SERIES, 15_000), query, 30_000, 2_300_000, 45_000)


def test_columns_count_against_the_sample_limit() -> None:
    engine = _engine(SERIES, MINUTE)
    engine.limits = QueryLimits(max_samples=2000)
    with pytest.raises(PromQLError, match="too many samples"):
        engine.range("rate(http_requests_total[5m]) * 2", 0, 10_000 * MINUTE, MINUTE)


def test_infinite_values_sum_the_way_prometheus_does() -> None:
    engine = _engine([("x", "1 Inf 2 -Inf 3 1e308 1e308 -1e308")], MINUTE)
    for query in ("sum_over_time(x[3m])", "predict_linear(x[4m], 60)", "deriv(x[3m])"):
        _check(engine, query, 0, 8 * MINUTE, MINUTE)
    assert math.isinf(engine.instant("sum_over_time(x[2m])", 2 * MINUTE)[0].value)  # type: ignore[index]
