"""The labelled data the detectors are evaluated on, and a floor under how they do on it."""

from __future__ import annotations

import math

import pytest

from codequal.analytics.anomaly import DETECTORS
from codequal.analytics.anomaly.synthetic import KINDS, SHAPES, generate, overlaps


@pytest.mark.parametrize("kind", KINDS)
def test_generation_is_deterministic_per_seed(kind: str) -> None:
    a, b, c = generate(kind, "spike", 1), generate(kind, "spike", 1), generate(kind, "spike", 2)  # type: ignore[arg-type]
    assert a == b
    assert a.series != c.series


@pytest.mark.parametrize("kind", ["ratio", "latency", "throughput"])
@pytest.mark.parametrize("shape", SHAPES)
def test_planted_windows_lie_inside_the_series(kind: str, shape: str) -> None:
    case = generate(kind, shape, 0)  # type: ignore[arg-type]
    first, last = case.series.timestamps[0], case.series.timestamps[-1]
    assert all(first <= start <= end <= last for start, end in case.windows)
    assert (len(case.windows) == 0) == (shape == "quiet")
    assert (case.series.weights is None) == (kind == "throughput")


def test_ratio_series_are_ratios_with_traffic() -> None:
    s = generate("ratio", "quiet", 0).series
    assert s.weights is not None and min(s.weights) > 500
    assert all(0 <= v <= 1 for v in s.values if not math.isnan(v))


def test_only_a_leak_is_labelled_for_resources() -> None:
    for shape in SHAPES:
        case = generate("memory", shape, 0)
        assert (len(case.windows) == 2) == (shape == "trend")
        assert max(case.series.values) <= 1.0


@pytest.mark.parametrize(
    ("detector", "kind"),
    [("failure_rate", "ratio"), ("latency_drift", "latency"), ("robust_z", "throughput")],
)
def test_each_detector_finds_every_planted_spike_with_at_most_one_false_alarm(
    detector: str, kind: str
) -> None:
    case = generate(kind, "spike", 0)  # type: ignore[arg-type]
    found = DETECTORS[detector].detect(case.series, case.series.timestamps[-1])
    assert len(case.windows) == 4
    assert all(any(overlaps(a.start, a.end, w) for a in found) for w in case.windows)
    false = [a for a in found if not any(overlaps(a.start, a.end, w) for w in case.windows)]
    assert len(false) <= 1, [a.explanation for a in false]


def test_memory_exhaustion_warns_before_each_planted_leak_fills_up() -> None:
    case = generate("memory", "trend", 0)
    found = DETECTORS["memory_exhaustion"].detect(case.series, case.series.timestamps[-1])
    assert len(found) == len(case.windows)
    for (_, full), anomaly in zip(case.windows, found, strict=True):
        assert anomaly.start < full  # before the crash, not after it
