"""The shared records: series validation, the JSON shape, parameter checks."""

from __future__ import annotations

import json
import math
import re

import pytest

from codequal.analytics.anomaly import (
    Anomaly,
    FailureRateParams,
    RobustZParams,
    ScanParams,
    SeriesError,
    TimeSeries,
)


def test_series_are_sorted_by_time() -> None:
    s = TimeSeries.of([3, 1, 2], [30, 10, 20], [3, 1, 2])
    assert s == TimeSeries((1.0, 2.0, 3.0), (10.0, 20.0, 30.0), (1.0, 2.0, 3.0))


def test_series_reject_repeated_timestamps_and_length_mismatch() -> None:
    with pytest.raises(SeriesError, match=re.escape("1970-01-01T00:00:01.000Z appears twice")):
        TimeSeries.of([1, 1], [1, 2])
    with pytest.raises(SeriesError, match="differ in length: 2, 1"):
        TimeSeries.of([1, 2], [1])


def test_series_from_the_promql_engine_are_in_milliseconds() -> None:
    assert TimeSeries.from_millis([1000, 2500], [1, 2]).timestamps == (1.0, 2.5)


def test_anomaly_json_uses_iso_times_and_null_for_no_bound() -> None:
    a = Anomaly(
        detector="latency_drift",
        start=0.0,
        end=300.0,
        peak_at=300.0,
        peak=140.0,
        baseline=60.0,
        band=(-math.inf, 90.0),
        score=140 / 60,
        direction="up",
        status="closed",
        explanation="p99 ...",
        details={"events": 42.0},
    )
    payload = a.to_json()
    assert payload["start"] == "1970-01-01T00:00:00.000Z"
    assert payload["band"] == [None, 90.0]
    assert payload["details"] == {"events": 42.0}
    json.dumps(payload, allow_nan=False)  # strict JSON


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ScanParams(window=0), "window must be positive"),
        (lambda: ScanParams(min_traffic=-1), "min_traffic must be >= 0"),
        (lambda: ScanParams(seasonality="hourly"), "seasonality must be one of"),  # type: ignore[arg-type]
        (lambda: FailureRateParams(factor=1), "factor must be above 1"),
        (lambda: FailureRateParams(max_p_value=0), "max_p_value must be between 0 and 1"),
        (lambda: RobustZParams(threshold=0), "threshold must be positive"),
    ],
)
def test_invalid_parameters_name_the_field(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
