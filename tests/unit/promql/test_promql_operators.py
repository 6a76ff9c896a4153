"""Binary operators and vector matching."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from codequal.tsdb.promql import PromQLError

MakeEngine = Callable[..., Any]


def test_arithmetic_drops_the_metric_name(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "6"})
    assert e.values("x * 2 + 1", 0) == {'{a="1"}': 13}
    assert e.values("-x", 0) == {'{a="1"}': -6}


def test_comparison_filters_and_keeps_the_name(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "6", 'x{a="2"}': "1"})
    assert e.values("x > 2", 0) == {'{__name__="x", a="1"}': 6}
    # The vector's own value is returned even when it is on the right.
    assert e.values("2 < x", 0) == {'{__name__="x", a="1"}': 6}


def test_bool_comparison_returns_zero_or_one_without_name(make_engine: MakeEngine) -> None:
    e = make_engine({'x{a="1"}': "6", 'x{a="2"}': "1"})
    assert e.values("x > bool 2", 0) == {'{a="1"}': 1, '{a="2"}': 0}
    assert e.values("1 < bool 2", 0) == {"scalar": 1}


def test_scalar_arithmetic_follows_ieee_like_go(make_engine: MakeEngine) -> None:
    e = make_engine({})
    assert e.value("1 / 0", 0) == math.inf
    assert e.value("-1 / 0", 0) == -math.inf
    assert math.isnan(e.value("0 / 0", 0))
    assert e.value("-7 % 3", 0) == -1  # the sign of the dividend, as Go's math.Mod
    assert math.isnan(e.value("1 % 0", 0))
    assert e.value("2 ^ 10", 0) == 1024
    assert math.isnan(e.value("(-8) ^ 0.5", 0))
    assert e.value("-(1 + 2) * 3", 0) == -9


def test_one_to_one_matching_ignores_the_metric_name(make_engine: MakeEngine) -> None:
    e = make_engine({'used{m="/"}': "25", 'total{m="/"}': "100", 'total{m="/x"}': "1"})
    assert e.values("used / total", 0) == {'{m="/"}': 0.25}


def test_on_keeps_only_the_matching_labels_in_one_to_one(make_engine: MakeEngine) -> None:
    e = make_engine({'a{x="1", y="p"}': "2", 'b{x="1", y="q"}': "3"})
    assert e.values("a + on(x) b", 0) == {'{x="1"}': 5}
    assert e.values("a + ignoring(y) b", 0) == {'{x="1"}': 5}
    assert e.values("a + b", 0) == {}


def test_group_left_copies_labels_from_the_one_side(make_engine: MakeEngine) -> None:
    e = make_engine(
        {
            'req{instance="a", code="200"}': "10",
            'req{instance="a", code="500"}': "2",
            'info{instance="a", version="1.2"}': "1",
        }
    )
    assert e.values("req * on(instance) group_left(version) info", 0) == {
        '{code="200", instance="a", version="1.2"}': 10,
        '{code="500", instance="a", version="1.2"}': 2,
    }
    assert e.values("info * on(instance) group_right(version) req", 0) == {
        '{code="200", instance="a", version="1.2"}': 10,
        '{code="500", instance="a", version="1.2"}': 2,
    }


def test_duplicate_series_on_the_one_side_is_many_to_many(make_engine: MakeEngine) -> None:
    e = make_engine({'a{i="1", c="x"}': "1", 'b{i="1", c="x"}': "1", 'b{i="1", c="y"}': "1"})
    with pytest.raises(PromQLError, match="many-to-many matching not allowed") as err:
        e.instant("a + on(i) b", 0)
    assert 'match group {i="1"} on the right hand-side' in str(err.value)


def test_many_to_one_needs_group_left(make_engine: MakeEngine) -> None:
    e = make_engine({'a{i="1", c="x"}': "1", 'a{i="1", c="y"}': "1", 'b{i="1"}': "1"})
    with pytest.raises(PromQLError, match="many-to-one matching must be explicit"):
        e.instant("a + on(i) b", 0)
    assert len(e.values("a + on(i) group_left b", 0)) == 2


def test_group_left_result_must_be_unique(make_engine: MakeEngine) -> None:
    # Copying c from the one side gives both results the labels {c="z", i="1"}.
    e = make_engine({'a{i="1", c="x"}': "1", 'a{i="1", c="y"}': "1", 'b{i="1", c="z"}': "1"})
    with pytest.raises(PromQLError, match="grouping labels must ensure unique matches"):
        e.instant("a - on(i) group_left(c) b", 0)


def test_set_operators_match_on_labels_and_keep_the_left_samples(
    make_engine: MakeEngine,
) -> None:
    e = make_engine({'a{i="1"}': "1", 'a{i="2"}': "2", 'b{i="2"}': "20", 'b{i="3"}': "30"})
    assert e.values("a and b", 0) == {'{__name__="a", i="2"}': 2}
    assert e.values("a unless b", 0) == {'{__name__="a", i="1"}': 1}
    assert e.values("a or b", 0) == {
        '{__name__="a", i="1"}': 1,
        '{__name__="a", i="2"}': 2,
        '{__name__="b", i="3"}': 30,
    }
    assert len(e.values("a and on() b", 0)) == 2


def test_same_labelset_after_dropping_the_name_is_an_error(make_engine: MakeEngine) -> None:
    e = make_engine({'a{i="1"}': "1", 'b{i="1"}': "2"})
    with pytest.raises(PromQLError, match="vector cannot contain metrics with the same labelset"):
        e.instant('{__name__=~"a|b"} + 1', 0)
