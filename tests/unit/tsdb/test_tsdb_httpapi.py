"""Prometheus HTTP API parameters: its time and duration syntax, limits and error texts."""

from __future__ import annotations

import pytest

from codequal.tsdb import httpapi
from codequal.tsdb.httpapi import APIError
from codequal.tsdb.promql import Matcher, MatchOp


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1700000000", 1_700_000_000_000),
        ("1700000000.123", 1_700_000_000_123),
        ("1700000000.1235", 1_700_000_000_124),  # rounded to ms, half away from zero
        ("1.7e9", 1_700_000_000_000),
        ("-1.5", -1_500),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000_500),
        ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123),
        ("2023-11-15T00:13:20+02:00", 1_700_000_000_000),
        ("2023-11-14T20:13:20-02:00", 1_700_000_000_000),
    ],
)
def test_times_are_unix_seconds_or_rfc3339(text: str, ms: int) -> None:
    assert httpapi.parse_time_ms(text) == ms


def test_prometheus_min_and_max_time_mean_unbounded() -> None:
    assert httpapi.parse_time_ms(httpapi.MIN_TIME_TEXT) is None
    assert httpapi.parse_time_ms(httpapi.MAX_TIME_TEXT) is None


@pytest.mark.parametrize(
    "text", ["yesterday", "2023-11-14 22:13:20Z", "2023-13-01T00:00:00Z", "NaN"]
)
def test_a_bad_time_is_bad_data_naming_the_parameter(text: str) -> None:
    with pytest.raises(APIError) as info:
        httpapi.time_param({"time": [text]}, "time", 0)
    assert info.value.error_type == "bad_data"
    assert info.value.status == 400
    assert info.value.message.startswith('invalid parameter "time": cannot parse')


@pytest.mark.parametrize(
    ("text", "ms"),
    [("15s", 15_000), ("1m30s", 90_000), ("15", 15_000), ("0.5", 500), ("1h", 3_600_000)],
)
def test_durations_are_prometheus_durations_or_float_seconds(text: str, ms: int) -> None:
    assert httpapi.duration_param({"step": [text]}, "step") == ms


def test_range_parameters_fail_in_prometheus_order_with_its_messages() -> None:
    def error(**params: str) -> str:
        with pytest.raises(APIError) as info:
            httpapi.range_params({k: [v] for k, v in params.items()})
        return info.value.message

    assert (
        error(end="10", step="1")
        == 'invalid parameter "start": cannot parse "" to a valid timestamp'
    )
    assert error(start="10", end="5", step="1") == "end timestamp must not be before start time"
    assert error(start="0", end="5", step="1x") == (
        'invalid parameter "step": cannot parse "1x" to a valid duration'
    )
    assert error(start="0", end="5", step="0") == (
        "zero or negative query resolution step widths are not accepted. Try a positive integer"
    )
    assert error(start="0", end="11001", step="1") == (
        "exceeded maximum resolution of 11,000 points per timeseries. "
        "Try decreasing the query resolution (?step=XX)"
    )
    assert httpapi.range_params({"start": ["0"], "end": ["11000"], "step": ["1s"]}) == (
        0,
        11_000_000,
        1000,
    )


def test_match_selectors_become_matcher_lists() -> None:
    sets = httpapi.match_params({"match[]": ['up{job="a"}', '{__name__=~"x.*"}']}, required=True)
    assert sets[0] == [Matcher(MatchOp.EQUAL, "__name__", "up"), Matcher(MatchOp.EQUAL, "job", "a")]
    assert [str(m) for m in sets[1]] == ['__name__=~"x.*"']
    with pytest.raises(APIError, match=r"no match\[\] parameter provided"):
        httpapi.match_params({}, required=True)
    with pytest.raises(APIError, match="expected a series selector"):
        httpapi.match_params({"match[]": ["rate(x[5m])"]}, required=True)
    assert httpapi.match_params({}, required=False) == []


def test_label_names_are_checked() -> None:
    assert httpapi.label_name("job") == "job"
    with pytest.raises(APIError, match='invalid label name: "1job"'):
        httpapi.label_name("1job")


def test_errors_carry_prometheus_error_types_and_statuses() -> None:
    assert APIError("execution", "x").status == 422
    assert APIError("timeout", "x").status == 503
    assert APIError("bad_data", "m").body() == {
        "status": "error",
        "errorType": "bad_data",
        "error": "m",
    }
