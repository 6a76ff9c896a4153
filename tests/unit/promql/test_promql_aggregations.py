"""Aggregation operators with by / without."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from codequal.tsdb.promql import PromQLError, Vector

MakeEngine = Callable[..., Any]

REQUESTS = {
    'req{job="api", instance="a"}': "1",
    'req{job="api", instance="b"}': "4",
    'req{job="web", instance="a"}': "10",
}


def test_by_keeps_only_the_listed_labels(make_engine: MakeEngine) -> None:
    e = make_engine(REQUESTS)
    assert e.values("sum by (job) (req)", 0) == {'{job="api"}': 5, '{job="web"}': 10}
    assert e.values("sum(req) by (job)", 0) == {'{job="api"}': 5, '{job="web"}': 10}


def test_without_drops_the_listed_labels_and_the_name(make_engine: MakeEngine) -> None:
    e = make_engine(REQUESTS)
    assert e.values("max without (instance) (req)", 0) == {'{job="api"}': 4, '{job="web"}': 10}


def test_no_grouping_aggregates_everything_into_one_labelless_sample(
    make_engine: MakeEngine,
) -> None:
    e = make_engine(REQUESTS)
    assert e.values("count(req)", 0) == {"{}": 3}
    assert e.values("avg(req)", 0) == {"{}": 5}
    assert e.values("min(req)", 0) == {"{}": 1}
    assert e.values("group(req)", 0) == {"{}": 1}


def test_stddev_and_stdvar_are_population_statistics(make_engine: MakeEngine) -> None:
    e = make_engine({'x{i="1"}': "2", 'x{i="2"}': "4", 'x{i="3"}': "4", 'x{i="4"}': "6"})
    assert e.value("stdvar(x)", 0) == 2  # mean 4; (4 + 0 + 0 + 4) / 4
    assert e.value("stddev(x)", 0) == pytest.approx(math.sqrt(2))


def test_quantile_interpolates_between_ranks(make_engine: MakeEngine) -> None:
    e = make_engine(REQUESTS)
    assert e.value("quantile(0.5, req)", 0) == 4
    assert e.value("quantile(0.75, req)", 0) == 4 + 0.5 * 6


def test_topk_keeps_whole_samples_largest_first(make_engine: MakeEngine) -> None:
    e = make_engine(REQUESTS)
    result = e.instant("topk(2, req)", 0)
    assert isinstance(result, Vector)
    assert [(s.labels.get("job"), s.value) for s in result] == [("web", 10), ("api", 4)]
    assert result[0].labels.get("__name__") == "req"


def test_bottomk_by_group_picks_the_smallest_per_group(make_engine: MakeEngine) -> None:
    e = make_engine(REQUESTS)
    assert e.values("bottomk by (job) (1, req)", 0) == {
        '{__name__="req", instance="a", job="api"}': 1,
        '{__name__="req", instance="a", job="web"}': 10,
    }


def test_topk_ranks_nan_last_and_truncates_k(make_engine: MakeEngine) -> None:
    e = make_engine({'x{i="1"}': "NaN", 'x{i="2"}': "-5"})
    assert e.values("topk(1.9, x)", 0) == {'{__name__="x", i="2"}': -5}
    assert e.values("bottomk(1, x)", 0) == {'{__name__="x", i="2"}': -5}
    assert e.values("topk(0, x)", 0) == {}


def test_topk_with_nan_k_is_an_error(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1"})
    with pytest.raises(PromQLError, match="overflows int64"):
        e.instant("topk(scalar(nothing), x)", 0)


def test_count_values_formats_values_without_exponent(make_engine: MakeEngine) -> None:
    e = make_engine({'x{i="1"}': "1", 'x{i="2"}': "1", 'x{i="3"}': "2.5", 'x{i="4"}': "1e21"})
    assert e.values('count_values("v", x)', 0) == {
        '{v="1"}': 2,
        '{v="2.5"}': 1,
        '{v="1000000000000000000000"}': 1,
    }


def test_max_and_min_skip_nan_unless_all_are_nan(make_engine: MakeEngine) -> None:
    e = make_engine({'x{i="1"}': "NaN", 'x{i="2"}': "3"})
    assert e.value("max(x)", 0) == 3
    assert e.value("min(x)", 0) == 3


def test_avg_of_an_infinity_stays_infinite(make_engine: MakeEngine) -> None:
    e = make_engine({'x{i="1"}': "Inf", 'x{i="2"}': "3"})
    assert e.value("avg(x)", 0) == math.inf
