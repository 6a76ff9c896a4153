"""The envelope detector: causal, one anomaly per incident, dated at detection, quiet while
learning, and quiet on a series that only repeats itself."""

from __future__ import annotations

import math

import pytest

from codequal.analytics.anomaly import DEFAULT_DETECTOR, DETECTORS, EnvelopeParams, EnvelopeState
from codequal.analytics.anomaly.envelope import detect_envelope

from .conftest import Noise, at, series

DAY_SAMPLES = 288  # at a five-minute step


def daily(i: int) -> float:
    """A smooth daily shape: 100 at night, 160 in the afternoon."""
    return 130 - 30 * math.cos(2 * math.pi * i / DAY_SAMPLES)


def daily_with_noise(noise: Noise, days: int) -> list[float]:
    jitter = noise(days * DAY_SAMPLES, 1.0, 0.01)
    return [daily(i) * j for i, j in enumerate(jitter)]


def test_envelope_is_the_default_detector() -> None:
    assert DEFAULT_DETECTOR == "envelope"
    assert DETECTORS["envelope"].name == "envelope"


def test_a_spike_is_one_anomaly_dated_when_it_was_detected(noise: Noise) -> None:
    values = daily_with_noise(noise, 6)
    spike = 5 * DAY_SAMPLES
    for i in range(spike, spike + 6):  # thirty minutes at twice the usual peak
        values[i] = 320.0
    [found] = detect_envelope(series(values), at(len(values) - 1))
    assert found.start == at(spike)  # the first sample that was judged anomalous
    assert found.end == at(spike + 5)
    assert found.direction == "up" and found.status == "closed"
    assert found.peak == 320.0 and found.band[1] < 320.0 < found.peak + 1
    assert "above the band" in found.explanation and "Detected at" in found.explanation


def test_a_level_shift_alarms_once_and_becomes_the_new_normal(noise: Noise) -> None:
    shift = 3 * DAY_SAMPLES
    values = [v + (200 if i >= shift else 0) for i, v in enumerate(noise(1500, 50, 0.02))]
    found = detect_envelope(series(values), at(len(values) - 1))
    # Noise alone sets a record now and then before the shift; the shift is one anomaly.
    [after] = [a for a in found if a.start >= at(shift)]
    assert after.start == at(shift) and after.direction == "up"


def test_nothing_is_reported_while_learning(noise: Noise) -> None:
    values = noise(600, 50, 0.02)
    values[100] = 500.0  # within the first day and the first 300 samples
    assert detect_envelope(series(values), at(599)) == []


def test_a_series_that_repeats_its_day_has_no_anomaly() -> None:
    values = [daily(i) for i in range(14 * DAY_SAMPLES)]
    assert detect_envelope(series(values), at(len(values) - 1)) == []


def test_a_missing_daily_peak_is_found_against_the_daily_profile(noise: Noise) -> None:
    values = daily_with_noise(noise, 8)
    flat = 6 * DAY_SAMPLES + DAY_SAMPLES // 4  # the afternoon of day 6 stays at night level
    for i in range(flat, flat + DAY_SAMPLES // 2):
        values[i] = 100.0
    found = detect_envelope(series(values), at(len(values) - 1))
    assert len(found) == 1
    assert found[0].direction == "down" and "time of day" in found[0].explanation
    assert at(flat) <= found[0].start < at(flat + DAY_SAMPLES // 2)


def test_verdicts_are_causal_a_prefix_gives_the_same_anomalies(noise: Noise) -> None:
    values = daily_with_noise(noise, 6)
    values[4 * DAY_SAMPLES] = 400.0
    values[5 * DAY_SAMPLES + 7] = 10.0
    whole = detect_envelope(series(values), at(len(values) - 1))
    cut = 5 * DAY_SAMPLES
    prefix = detect_envelope(series(values[:cut]), at(cut - 1))
    assert [a.start for a in prefix] == [a.start for a in whole if a.start < at(cut)]
    assert len(whole) == len(prefix) + 1


def test_an_incident_within_the_gap_stays_one_anomaly(noise: Noise) -> None:
    values = daily_with_noise(noise, 4)
    start = 3 * DAY_SAMPLES
    for k, i in enumerate((start, start + 10, start + 25, start + 40)):  # each a new record
        values[i] = 300.0 + 100 * k
    [found] = detect_envelope(series(values), at(len(values) - 1))
    assert (found.start, found.end) == (at(start), at(start + 40))
    assert found.details["alarms"] == 4


def test_gaps_in_the_data_are_skipped_not_judged(noise: Noise) -> None:
    values = daily_with_noise(noise, 4)
    values[3 * DAY_SAMPLES] = math.nan
    assert detect_envelope(series(values), at(len(values) - 1)) == []


def test_the_state_stays_bounded_however_long_it_runs(noise: Noise) -> None:
    state = EnvelopeState()
    for i, v in enumerate(noise(20_000, 10, 0.1)):
        state.update(at(i), v)
    assert all(len(m.window) <= max(state.params.scales) for m in state.means)
    assert all(len(e.blocks) <= e.BLOCKS for e in state.extremes)
    assert len(state.profile.cells) <= state.params.season_bins


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"margin": 0}, "margin must be between 0 and 10"),
        ({"scales": ()}, "scales must be sample counts"),
        ({"false_alarm": 1.5}, "false_alarm must be between 0 and 1"),
        ({"season_gate": 0}, "season_gate must be in"),
    ],
)
def test_bad_settings_say_what_to_change(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EnvelopeParams(**kwargs)  # type: ignore[arg-type]
