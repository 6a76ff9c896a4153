"""Exhaustion forecasts: minutes until full from a linear fit, and when that is news."""

from __future__ import annotations

import dataclasses
import math

import pytest

from codequal.analytics.anomaly import (
    DISK,
    MEMORY,
    ExhaustionParams,
    TimeSeries,
    detect_exhaustion,
    forecast,
)
from codequal.analytics.anomaly.base import DAY, HOUR, MINUTE

from .conftest import T0


def linear(start: float, per_minute: float, minutes: int) -> TimeSeries:
    """One sample a minute growing exactly ``per_minute``."""
    ts = [T0 + i * MINUTE for i in range(minutes)]
    return TimeSeries.of(ts, [start + per_minute * i for i in range(minutes)])


def test_minutes_until_full_is_exact_on_linear_data() -> None:
    s = linear(0.5, 0.005, 40)  # 0.695 at minute 39: 0.305 of room at 0.005 a minute
    fc = forecast(s, s.timestamps[-1])
    assert fc is not None
    assert math.isclose(fc.slope * MINUTE, 0.005)
    assert math.isclose(fc.r_squared, 1.0)
    assert math.isclose(fc.seconds_left / MINUTE, 61.0)


def test_memory_alerts_when_full_in_under_thirty_minutes() -> None:
    s = linear(0.503, 0.004, 120)  # full at minute 124.25
    [found] = detect_exhaustion(s, s.timestamps[-1], MEMORY)
    # Thirty minutes before full is minute 94.25: the first sample under it is minute 95.
    assert found.start == T0 + 95 * MINUTE
    assert (found.end, found.status) == (T0 + 119 * MINUTE, "open")
    assert found.peak_at == found.end  # the least time left
    assert math.isclose(found.details["minutes_left"], 5.25)
    assert found.detector == "memory_exhaustion"


def test_exhaustion_explains_with_level_growth_and_time_left() -> None:
    s = linear(0.5, 0.005, 80)  # 0.895 at minute 79: full in 21 minutes
    [found] = detect_exhaustion(s, s.timestamps[-1], MEMORY)
    assert math.isclose(found.details["minutes_left"], 21.0)
    assert math.isclose(found.details["slope_per_minute"], 0.005)
    assert math.isclose(found.baseline, 0.895)
    assert math.isclose(found.band[1], 1.0 - 0.005 * 30)
    assert math.isclose(found.score, 30 / 21)
    assert "Memory at 0.895 of capacity 1" in found.explanation
    assert "growing 0.005 per minute" in found.explanation
    assert "full in 21 min, under the 30 min horizon" in found.explanation


def test_slow_growth_is_not_an_alert() -> None:
    s = linear(0.5, 0.0001, 200)  # 0.52: full in 80 hours
    assert detect_exhaustion(s, s.timestamps[-1], MEMORY) == []


def test_disk_uses_the_configured_horizon() -> None:
    minutes = 12 * 60
    s = TimeSeries.of(
        [T0 + i * MINUTE for i in range(minutes)],
        [0.6 + 0.4 * i / (2 * DAY / MINUTE) for i in range(minutes)],  # full in two days
    )
    assert detect_exhaustion(s, s.timestamps[-1], DISK) == []
    week = dataclasses.replace(DISK, horizon=7 * DAY)
    [found] = detect_exhaustion(s, s.timestamps[-1], week)
    assert found.detector == "disk_exhaustion"
    assert "under the 7 d horizon" in found.explanation


def test_capacity_in_bytes() -> None:
    gib = 2.0**30
    s = linear(6 * gib, gib / 100, 90)  # 8 GiB total: full in 200 - 89 minutes
    params = dataclasses.replace(MEMORY, capacity=8 * gib, horizon=2 * HOUR)
    [found] = detect_exhaustion(s, s.timestamps[-1], params)
    assert math.isclose(found.details["minutes_left"], 111.0)


def test_no_forecast_without_minimum_history() -> None:
    s = linear(0.9, 0.01, 5)
    assert forecast(s, s.timestamps[-1]) is None
    assert detect_exhaustion(s, s.timestamps[-1]) == []


def test_noise_without_a_trend_is_not_extrapolated() -> None:
    values = [0.9 + (0.02 if i % 2 else -0.02) for i in range(60)]
    values[-1] = 0.95
    s = TimeSeries.of([T0 + i * MINUTE for i in range(60)], values)
    fc = forecast(s, s.timestamps[-1])
    assert fc is not None and fc.r_squared < MEMORY.min_r_squared
    assert fc.seconds_left == math.inf
    assert detect_exhaustion(s, s.timestamps[-1]) == []


def test_a_full_resource_is_reported_even_without_growth() -> None:
    s = TimeSeries.of([T0 + i * MINUTE for i in range(30)], [1.0] * 30)
    [found] = detect_exhaustion(s, s.timestamps[-1])
    assert found.details["minutes_left"] == 0
    assert "full now" in found.explanation


@pytest.mark.parametrize(
    ("field", "value"),
    [("capacity", 0.0), ("horizon", -1.0), ("min_samples", 2), ("min_r_squared", 1.5)],
)
def test_invalid_parameters_say_what_to_fix(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ExhaustionParams(**{field: value})


def test_a_series_above_capacity_is_not_in_its_unit_and_gets_no_verdict() -> None:
    # A count that touches 1.0 among values in the hundreds is not a ratio that is full.
    values = [150.0 + (i % 5) for i in range(100)] + [1.0, 1.0, 120.0]
    s = TimeSeries.of([T0 + 60 * i for i in range(len(values))], values)
    assert detect_exhaustion(s, s.timestamps[-1], MEMORY) == []
    assert forecast(s, s.timestamps[-1], MEMORY) is None
