"""Series builders for the anomaly tests: seeded, so every run sees the same numbers."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest

from codequal.analytics.anomaly import TimeSeries

T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z, a Monday
STEP = 300.0  # five minutes


def at(i: int) -> float:
    """The timestamp of sample ``i``."""
    return T0 + i * STEP


def series(values: Sequence[float], weights: Sequence[float] | None = None) -> TimeSeries:
    """Samples every five minutes from T0."""
    return TimeSeries.of([at(i) for i in range(len(values))], values, weights)


Noise = Callable[[int, float, float], list[float]]


@pytest.fixture
def noise() -> Noise:
    """``noise(n, level, relative_sd)``: n samples of level x (1 + gaussian noise), seeded."""

    def make(n: int, level: float, relative_sd: float) -> list[float]:
        rng = random.Random(n * 7919 + int(level))  # noqa: S311 - test data, not secrets
        return [level * (1 + rng.gauss(0, relative_sd)) for _ in range(n)]

    return make
