"""Seeded series with planted anomalies, labelled with the windows they occupy.

The labelled data the detectors are evaluated on (``bench/eval_anomaly.py``) and tested
against. Each *kind* is what one detector family watches, with its own noise model:

- ``ratio``: failure ratio, failures ~ Poisson(traffic x 2 %) of ~1000 events a sample, the
  traffic in ``weights``;
- ``latency``: p99 seconds, log-normal noise around 60 s, traffic in ``weights``;
- ``throughput``: events per 5 minutes, Poisson-like noise around 200;
- ``memory`` / ``disk``: used fraction of capacity (GC sawtooth, daily log growth).

Each *shape* plants one kind of anomaly: ``spike`` (1-4 samples), ``level_shift`` (persists to
the end; labelled for the first 6 h), ``trend`` (an 8 h ramp that then holds), ``seasonal``
(daily and weekly seasonality with noise, spikes planted in the last two weeks) and ``quiet``
(noise only, nothing planted). For memory and disk only ``trend`` is labelled (a leak or a
fill until full); their other shapes plant spikes, steps and waves that must *not* be taken
for exhaustion.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from codequal.analytics.anomaly.base import DAY, HOUR, MINUTE, TimeSeries

Kind = Literal["ratio", "latency", "throughput", "memory", "disk"]
Shape = Literal["spike", "level_shift", "trend", "seasonal", "quiet"]
KINDS: tuple[Kind, ...] = ("ratio", "latency", "throughput", "memory", "disk")
SHAPES: tuple[Shape, ...] = ("spike", "level_shift", "trend", "seasonal", "quiet")
EPOCH = 1_704_067_200.0  # 2024-01-01T00:00:00Z, a Monday
LABELLED_SHIFT = 6 * HOUR  # a level shift is "the anomaly" until it should be the new normal
Window = tuple[float, float]


@dataclass(frozen=True)
class Labelled:
    """A generated series and the windows of its planted anomalies (Unix seconds)."""

    kind: Kind
    shape: Shape
    seed: int
    series: TimeSeries
    windows: tuple[Window, ...]


class _Effect(NamedTuple):
    """How strongly each shape moves a kind: multipliers of its normal level."""

    spike: float
    dip: float  # the downward spike; 0 for kinds where only up is news
    shift: float
    trend: float
    seasonal_amplitude: float


_EFFECTS: dict[str, _Effect] = {
    "ratio": _Effect(spike=3.0, dip=0.0, shift=2.5, trend=3.0, seasonal_amplitude=0.2),
    "latency": _Effect(spike=2.2, dip=0.0, shift=1.8, trend=2.0, seasonal_amplitude=0.15),
    "throughput": _Effect(spike=1.6, dip=0.5, shift=1.5, trend=1.6, seasonal_amplitude=0.6),
}
_STEP = 5 * MINUTE


def generate(kind: Kind, shape: Shape, seed: int) -> Labelled:
    """One labelled series; the same (kind, shape, seed) always gives the same series."""
    rng = random.Random(f"{kind}/{shape}/{seed}")  # noqa: S311 - test data, not secrets
    if kind == "memory":
        series, windows = _memory(shape, rng)
    elif kind == "disk":
        series, windows = _disk(shape, rng)
    else:
        series, windows = _traffic(kind, shape, rng)
    return Labelled(kind, shape, seed, series, tuple(windows))


def dataset(kind: Kind, shape: Shape, seeds: int) -> list[Labelled]:
    """``seeds`` series of one kind and shape (seeds 0 .. seeds-1)."""
    return [generate(kind, shape, seed) for seed in range(seeds)]


def overlaps(start: float, end: float, window: Window) -> bool:
    """Whether [start, end] and the window share a moment (both ends inclusive)."""
    return start <= window[1] and end >= window[0]


# -- traffic-driven kinds: ratio, latency, throughput -----------------------------------


def _traffic(kind: Kind, shape: Shape, rng: random.Random) -> tuple[TimeSeries, list[Window]]:
    days = 35 if shape == "seasonal" else 14
    ts = [EPOCH + i * _STEP for i in range(int(days * DAY / _STEP))]
    effect = _EFFECTS[kind]
    amplitude = effect.seasonal_amplitude if shape == "seasonal" else 0.0
    season = [_season(t, amplitude) for t in ts]
    load = [_season(t, 0.6) if shape == "seasonal" else 1.0 for t in ts]
    mult, spans = _plant(shape, len(ts), effect, rng)
    windows = [(ts[a], ts[b]) for a, b in spans]
    traffic = [float(_poisson(rng, 1000 * x)) for x in load]
    make = _MAKERS[kind]
    values = [make(rng, s * m, n) for s, m, n in zip(season, mult, traffic, strict=True)]
    weights = None if kind == "throughput" else traffic
    return TimeSeries.of(ts, values, weights), windows


def _season(t: float, amplitude: float) -> float:
    """Daily wave peaking at 15:00 UTC; weekends at 60 % of weekdays."""
    if amplitude == 0:
        return 1.0
    hour = (t % DAY) / HOUR
    weekend = ((t - EPOCH) // DAY) % 7 >= 5
    return (1 + amplitude * math.cos(2 * math.pi * (hour - 15) / 24)) * (0.6 if weekend else 1.0)


def _ratio(rng: random.Random, level: float, traffic: float) -> float:
    if traffic == 0:
        return math.nan  # 0/0, as PromQL would give
    return min(_poisson(rng, traffic * 0.02 * level), traffic) / traffic


def _latency(rng: random.Random, level: float, traffic: float) -> float:
    return 60.0 * level * rng.lognormvariate(0, 0.1)


def _throughput(rng: random.Random, level: float, traffic: float) -> float:
    return float(_poisson(rng, 200 * level))


_MAKERS: dict[str, Callable[[random.Random, float, float], float]] = {
    "ratio": _ratio,
    "latency": _latency,
    "throughput": _throughput,
}


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # the normal approximation is within a fraction of a percent here
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:  # Knuth: count uniforms until their product drops below e^-lambda
        k += 1
        p *= rng.random()
    return k


def _plant(
    shape: Shape, n: int, effect: _Effect, rng: random.Random
) -> tuple[list[float], list[tuple[int, int]]]:
    """Per-sample multipliers of the normal level, and the planted windows (indexes)."""
    per_day = int(DAY / _STEP)
    mult = [1.0] * n
    if shape in ("spike", "seasonal"):
        first_day = n // per_day - 14 if shape == "seasonal" else 3
        return mult, _plant_spikes(mult, first_day, per_day, effect, rng)
    if shape == "quiet":
        return mult, []
    # A weekday in the second week: the first weekend has no weekend history to compare with.
    start = rng.randrange(7 * per_day, 12 * per_day)
    if shape == "level_shift":
        mult[start:] = [effect.shift] * (n - start)
        return mult, [(start, start + int(LABELLED_SHIFT / _STEP))]
    ramp = int(8 * HOUR / _STEP)
    for i in range(start, n):
        mult[i] = 1 + (effect.trend - 1) * min(1.0, (i - start) / ramp)
    return mult, [(start, start + ramp)]


def _plant_spikes(
    mult: list[float], first_day: int, per_day: int, effect: _Effect, rng: random.Random
) -> list[tuple[int, int]]:
    """Four spikes, each on its own day, so they never merge into one window."""
    spans = []
    days = rng.sample(range(first_day, len(mult) // per_day), 4)
    for day in sorted(days):
        start = day * per_day + rng.randrange(per_day - 4)
        length = rng.randint(1, 4)
        factor = effect.dip if effect.dip and rng.random() < 0.5 else effect.spike
        mult[start : start + length] = [factor] * length
        spans.append((start, start + length - 1))
    return spans


# -- resources: memory and disk -------------------------------------------------------


def _memory(shape: Shape, rng: random.Random) -> tuple[TimeSeries, list[Window]]:
    """2 days at 1 minute: 45 % plus a 20-minute GC sawtooth; a leak fills it in 2-4 h."""
    step, n = MINUTE, int(2 * DAY / MINUTE)
    ts = [EPOCH + i * step for i in range(n)]
    base = [0.45 + 0.06 * ((t % 1200) / 1200) + rng.gauss(0, 0.004) for t in ts]
    leaks = [
        (rng.uniform(4, 16) * HOUR, rng.uniform(2, 4) * HOUR),
        (rng.uniform(26, 38) * HOUR, rng.uniform(2, 4) * HOUR),
    ]
    return _resource(shape, ts, base, _Resource(leaks, spike=0.3, step_up=0.2, wave=0.1), rng)


def _disk(shape: Shape, rng: random.Random) -> tuple[TimeSeries, list[Window]]:
    """10 days at 5 minutes: 55 % plus logs growing 2 % a day, rotated at 03:00."""
    step, n = 5 * MINUTE, int(10 * DAY / (5 * MINUTE))
    ts = [EPOCH + i * step for i in range(n)]
    base = [0.55 + 0.02 * (((t - 3 * HOUR) % DAY) / DAY) + rng.gauss(0, 0.001) for t in ts]
    leaks = [(rng.uniform(2, 5) * DAY, rng.uniform(1.5, 3) * DAY)]
    return _resource(shape, ts, base, _Resource(leaks, spike=0.1, step_up=0.2, wave=0.03), rng)


class _Resource(NamedTuple):
    """What each shape adds to a resource's normal use (fractions of capacity)."""

    leaks: list[tuple[float, float]]  # (start offset, time to fill) in seconds
    spike: float
    step_up: float
    wave: float


def _resource(
    shape: Shape, ts: list[float], base: list[float], spec: _Resource, rng: random.Random
) -> tuple[TimeSeries, list[Window]]:
    """Add the shape to ``base``; a leak grows until full, then the process restarts."""
    values = list(base)
    windows: list[Window] = []
    if shape == "trend":
        for offset, fill_time in spec.leaks:
            windows.extend(_leak(ts, values, ts[0] + offset, fill_time))
    elif shape == "spike":
        for _ in range(5):
            i = rng.randrange(len(ts) - 5)
            for j in range(i, i + rng.randint(2, 5)):
                values[j] += spec.spike
    elif shape == "level_shift":
        i = rng.randrange(len(ts) // 4, len(ts) // 2)
        values[i:] = [v + spec.step_up for v in values[i:]]
    elif shape == "seasonal":
        values = [
            v + spec.wave * math.cos(2 * math.pi * (t % DAY) / DAY)
            for v, t in zip(values, ts, strict=True)
        ]
    return TimeSeries.of(ts, [min(v, 1.0) for v in values]), windows


def _leak(ts: list[float], values: list[float], start: float, fill_time: float) -> list[Window]:
    """Grow from ``start`` so the resource is full after ``fill_time``; reset when full."""
    i0 = next(i for i, t in enumerate(ts) if t >= start)
    rate = (1.0 - values[i0]) / fill_time
    for i in range(i0, len(ts)):
        values[i] += rate * (ts[i] - ts[i0])
        if values[i] >= 1.0:
            values[i] = 1.0
            return [(ts[i0], ts[i])]
    return [(ts[i0], ts[-1])]
