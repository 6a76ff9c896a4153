"""Functions over instant vectors and scalars, histogram_quantile included."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from codequal.tsdb.promql import PromQLError, Vector

MINUTE = 60_000

MakeEngine = Callable[..., Any]

BUCKETS = {
    'h_bucket{job="a", le="0.1"}': "0",
    'h_bucket{job="a", le="0.5"}': "5",
    'h_bucket{job="a", le="1"}': "8",
    'h_bucket{job="a", le="+Inf"}': "10",
}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.1 + (0.5 - 0.1) * (5 / 5)),  # rank 5 ends the (0.1, 0.5] bucket
        (0.7, 0.5 + (1 - 0.5) * (2 / 3)),  # rank 7: 2 of the 3 in (0.5, 1]
        (0.9, 1.0),  # rank 9 falls in +Inf: the highest finite bound
        (-0.1, -math.inf),
        (1.1, math.inf),
    ],
)
def test_histogram_quantile_interpolates_linearly_within_a_bucket(
    make_engine: MakeEngine, q: float, expected: float
) -> None:
    e = make_engine(BUCKETS)
    assert e.values(f"histogram_quantile({q}, h_bucket)", 0) == {'{job="a"}': expected}


def test_histogram_quantile_fixes_non_monotonic_buckets(make_engine: MakeEngine) -> None:
    e = make_engine({'h{le="0.25"}': "5", 'h{le="1"}': "4", 'h{le="+Inf"}': "6"})
    # le="1" is raised to 5, so rank 3 lies in the first bucket: 0.25 * 3 / 5.
    assert e.value("histogram_quantile(0.5, h)", 0) == 0.25 * (3 / 5)


def test_histogram_quantile_without_inf_bucket_is_nan(make_engine: MakeEngine) -> None:
    e = make_engine({'h{le="0.5"}': "1", 'h{le="1"}': "2"})
    assert math.isnan(e.value("histogram_quantile(0.5, h)", 0))


def test_histogram_quantile_of_empty_histogram_is_nan(make_engine: MakeEngine) -> None:
    e = make_engine({'h{le="1"}': "0", 'h{le="+Inf"}': "0"})
    assert math.isnan(e.value("histogram_quantile(0.5, h)", 0))


def test_histogram_quantile_groups_by_labels_without_le(make_engine: MakeEngine) -> None:
    e = make_engine(
        {
            'h{job="a", le="1"}': "1",
            'h{job="a", le="+Inf"}': "2",
            'h{job="b", le="1"}': "2",
            'h{job="b", le="+Inf"}': "2",
            'h{job="c"}': "7",  # no le: ignored
        }
    )
    assert e.values("histogram_quantile(0.5, h)", 0) == {'{job="a"}': 1.0, '{job="b"}': 0.5}


def test_math_functions_drop_the_metric_name(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "-1.5"})
    assert e.values("abs(x)", 0) == {'{a="1"}': 1.5}
    assert e.value("ceil(x)", 0) == -1
    assert e.value("floor(x)", 0) == -2


def test_round_breaks_ties_upwards_and_accepts_a_step(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "2.5", 'x{a="2"}': "-2.5", 'x{a="3"}': "1.26"})
    assert e.values("round(x)", 0) == {'{a="1"}': 3, '{a="2"}': -2, '{a="3"}': 1}
    assert e.values("round(x, 0.1)", 0)['{a="3"}'] == 1.3


def test_clamp_limits_values_and_is_empty_when_max_below_min(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "-1", 'x{a="2"}': "3", 'x{a="3"}': "9"})
    assert e.values("clamp(x, 0, 5)", 0) == {'{a="1"}': 0, '{a="2"}': 3, '{a="3"}': 5}
    assert e.values("clamp(x, 5, 0)", 0) == {}
    assert e.values("clamp_min(x, 2)", 0) == {'{a="1"}': 2, '{a="2"}': 3, '{a="3"}': 9}
    assert e.values("clamp_max(x, 2)", 0) == {'{a="1"}': -1, '{a="2"}': 2, '{a="3"}': 2}


def test_absent_takes_labels_from_equality_matchers(make_engine: MakeEngine) -> None:
    e = make_engine({'x{job="a"}': "1"})
    assert e.values('absent(x{job="a"})', 0) == {}
    assert e.values('absent(nope{job="a", env=~"p.*"})', 0) == {'{job="a"}': 1}
    assert e.values('absent(nope{job="a", job="b"})', 0) == {"{}": 1}
    assert e.values("absent(sum(nope))", 0) == {"{}": 1}


def test_time_vector_and_scalar(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "4", 'x{a="2"}': "5"})
    assert e.values("time()", 90_500) == {"scalar": 90.5}
    assert e.values("vector(3)", 0) == {"{}": 3}
    assert e.values('scalar(x{a="1"})', 0) == {"scalar": 4}
    assert math.isnan(e.value("scalar(x)", 0))  # not exactly one element


def test_timestamp_of_a_selector_is_the_sample_time(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1 _ _"})
    assert e.values("timestamp(x)", 2 * MINUTE) == {"{}": 0}
    assert e.values("timestamp(x + 1)", 2 * MINUTE) == {"{}": 120}


def test_label_replace_expands_groups_like_go(make_engine: MakeEngine) -> None:
    e = make_engine({'x{src="api-7"}': "1"})
    query = 'label_replace(x, "dst", "{}", "src", "(?P<svc>[a-z]+)-(\\\\d+)")'

    def dst(template: str) -> str:
        (sample,) = e.instant(query.format(template), 0)
        return str(sample.labels.get("dst"))

    assert dst("$1/${2}") == "api/7"
    assert dst("${svc}x") == "apix"
    assert dst("$1x") == ""  # Go reads "$1x" as the (missing) group named "1x"
    assert dst("$$1") == "$1"


def test_label_replace_leaves_non_matching_series_alone(make_engine: MakeEngine) -> None:
    e = make_engine({'x{src="api"}': "1"})
    assert e.values('label_replace(x, "dst", "$1", "src", "w(.*)")', 0) == {
        '{__name__="x", src="api"}': 1
    }


def test_label_replace_rejects_an_invalid_destination(make_engine: MakeEngine) -> None:
    e = make_engine({"x": "1"})
    with pytest.raises(PromQLError, match="invalid destination label name"):
        e.instant('label_replace(x, "1a", "", "src", ".*")', 0)


def test_label_join_joins_source_values(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1", b="2"}': "1"})
    (sample,) = e.instant('label_join(x, "ab", ",", "a", "b", "missing")', 0)
    assert sample.labels.get("ab") == "1,2,"


def test_sort_orders_by_value_with_nan_last(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "3", 'x{a="2"}': "NaN", 'x{a="3"}': "1"})

    def order(query: str) -> list[str]:
        result = e.instant(query, 0)
        assert isinstance(result, Vector)
        return [s.labels.get("a") for s in result]

    assert order("sort(x)") == ["3", "1", "2"]
    assert order("sort_desc(x)") == ["1", "3", "2"]


def test_relabelling_two_series_onto_one_labelset_is_an_error(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "1", 'x{a="2"}': "2"})
    with pytest.raises(PromQLError, match="same labelset"):
        e.instant('label_replace(x, "a", "same", "a", ".*")', 0)
