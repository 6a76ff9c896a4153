"""Envelope: the general-purpose streaming detector, for any metric series.

A sample is anomalous when the series leaves the envelope it has shown so far by more than
``margin`` (5 %) of that envelope's width: a value higher (or lower) than any in its memory,
the mean of the last 8 or 32 samples higher (or lower) than any such mean before, or, for a
series with a daily shape, a deviation from the same time of day larger than any before.

Why this shape of rule. Real operations series are heavy-tailed, seasonal and full of
harmless repeats: the tenth nightly batch spike is not news however many sigmas it is, the
first one is. Thresholds in units of a standard deviation cry wolf on such series (the old
``robust_z`` raised thousands of alarms on NAB); a threshold at the series' own past
extremes is the peaks-over-threshold idea of extreme-value theory with the threshold at the
sample maximum, and it needs no distribution assumption. The envelope holds the last
``memory`` samples (5000: 17 days at a 5-minute step), so a level not seen for that long is
forgotten and may alarm once more. While the envelope holds few samples the margin widens
(see ``EnvelopeState._margin``): the first days' records are expected, not news. The
multi-scale means find sustained changes that no single sample shows (a burst of activity,
denser spikes), as the averaging of raw scores in HTM's anomaly likelihood does. The
seasonal branch compares each sample with a per-phase profile (a Holt-Winters-style
seasonal index over one day) and is only used while that profile predicts clearly better
than the plain level, so noisy series are not judged against a daily shape they lack.

Causal and streaming: each sample is judged from the samples before it, with O(1) work and
bounded memory (the 32 last samples, 32 blocks per envelope, at most ``season_bins``
profile cells). No alarm while learning: the first ``learn_samples`` samples (300: a day
and an hour at a 5-minute step) and at least one full day, since before that the envelope
has not seen the series' daily range; the daily deviations, which start after two days,
learn for as many samples again.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from codequal.analytics.anomaly.base import DAY, Anomaly, TimeSeries, num, upto
from codequal.analytics.anomaly.incidents import Incidents, Reading, to_anomalies

NAME = "envelope"


@dataclass(frozen=True)
class EnvelopeParams:
    """Settings of :func:`detect_envelope`; ``margin`` is the sensitivity."""

    margin: float = 0.05  # beyond the envelope by this fraction of its width
    memory: float = 5000.0  # samples the envelope remembers
    # Per sample and feature on iid normal noise: widens the margin of a young envelope.
    false_alarm: float = 1e-3
    scales: tuple[int, ...] = (1, 8, 32)  # samples per mean
    learn_samples: int = 300
    learn_seconds: float = DAY
    min_gap: int = 50  # samples without a new exceedance that end an incident
    period: float = DAY
    season_bins: int = 288  # phase cells per period, at most one per sample step
    season_weight: float = 0.3  # profile update weight (about the last 3 periods)
    # The seasonal branch speaks while its mean absolute error is under this fraction of the
    # plain level's: a daily shape that explains under 30 % of the error is noise.
    season_gate: float = 0.7

    def __post_init__(self) -> None:
        if not 0 < self.margin < 10:
            raise ValueError(f"margin must be between 0 and 10, not {self.margin}")
        if self.memory < 1 or self.learn_samples < 1 or self.min_gap < 1:
            raise ValueError("memory, learn_samples and min_gap must be at least 1")
        if not self.scales or min(self.scales) < 1:
            raise ValueError(f"scales must be sample counts >= 1, not {self.scales}")
        if self.period <= 0 or self.season_bins < 1 or not 0 < self.season_weight <= 1:
            raise ValueError("period, season_bins and season_weight must be positive")
        if not 0 < self.false_alarm < 1:
            raise ValueError(f"false_alarm must be between 0 and 1, not {self.false_alarm}")
        if not 0 < self.season_gate <= 1:
            raise ValueError(f"season_gate must be in (0, 1], not {self.season_gate}")


class _Extremes:
    """The highest and lowest values of roughly the last ``memory`` samples.

    Kept as the extremes of ``BLOCKS`` consecutive blocks, so memory and work per sample are
    constant; a block leaves as a whole when a new one starts.
    """

    BLOCKS = 32
    __slots__ = ("block", "blocks", "count", "high", "low", "old", "seen", "size")

    def __init__(self, memory: float) -> None:
        self.size = max(1, round(memory / self.BLOCKS))
        self.blocks: deque[tuple[float, float]] = deque(maxlen=self.BLOCKS)
        self.block = (math.inf, -math.inf)
        self.old = (math.inf, -math.inf)  # extremes of the full blocks
        self.count = 0
        self.seen = 0
        self.high = -math.inf
        self.low = math.inf

    def read(
        self, x: float, margin: float, feature: str, offset: float, floor: float = 0.0
    ) -> Reading | None:
        width = max(self.high - self.low, floor)
        if self.high < self.low or not width > 0:
            return None
        low, high = self.low - margin * width, self.high + margin * width
        score = max(x - self.high, self.low - x, 0.0) / width
        middle = (self.high + self.low) / 2
        return Reading(score, feature, x + offset, middle + offset, low + offset, high + offset)

    @property
    def width(self) -> float:
        return max(self.high - self.low, 0.0)

    def add(self, x: float) -> None:
        self.seen += 1
        low, high = self.block
        self.block = (min(low, x), max(high, x))
        self.count += 1
        if self.count == self.size:
            self.blocks.append(self.block)
            self.block, self.count = (math.inf, -math.inf), 0
            self.old = (min(b[0] for b in self.blocks), max(b[1] for b in self.blocks))
        self.low = min(self.old[0], self.block[0])
        self.high = max(self.old[1], self.block[1])


class _Mean:
    """The mean of the last ``k`` samples."""

    __slots__ = ("k", "total", "window")

    def __init__(self, k: int) -> None:
        self.k = k
        self.window: deque[float] = deque(maxlen=k)
        self.total = 0.0

    def add(self, x: float) -> float | None:
        if len(self.window) == self.k:
            self.total -= self.window[0]
        self.window.append(x)
        self.total += x
        return self.total / self.k if len(self.window) == self.k else None


class _Profile:
    """Per-phase expected values over one period, and whether they beat the plain level.

    The phase cell is as wide as the sample step (the median of the first steps), or
    ``period / bins`` when samples are denser. The profile is trusted after two periods.
    """

    # Weight of the running errors: about the last 100 samples.
    ERROR_WEIGHT = 0.01
    LEVEL_WEIGHT = 0.1
    STEPS_TO_LEARN = 21

    def __init__(self, params: EnvelopeParams) -> None:
        self.params = params
        self.cells: dict[int, float] = {}
        self.seen: dict[int, int] = {}
        self.steps: list[float] = []
        self.width = 0.0
        self.first = math.nan
        self.last = math.nan
        self.level = math.nan
        self.level_error = math.nan
        self.error = math.nan

    def expect(self, t: float) -> float | None:
        """The profile's value at ``t``, when it is learned and clearly better than the level."""
        if not self.width or t - self.first < 2 * self.params.period:
            return None
        value = self.cells.get(self._cell(t))
        if value is None or not self.error < self.params.season_gate * self.level_error:
            return None
        return value

    def add(self, t: float, x: float) -> None:
        self._learn_step(t)
        level_miss = 0.0 if math.isnan(self.level) else abs(x - self.level)
        self.level = _ew(self.level, x, self.LEVEL_WEIGHT)
        self.level_error = _ew(self.level_error, level_miss, self.ERROR_WEIGHT)
        if not self.width:
            return
        cell = self._cell(t)
        value = self.cells.get(cell)
        if value is not None and t - self.first >= 2 * self.params.period:
            self.error = _ew(self.error, abs(x - value), self.ERROR_WEIGHT)
        seen = self.seen.get(cell, 0) + 1
        self.seen[cell] = seen
        weight = max(self.params.season_weight, 1 / seen)
        self.cells[cell] = x if value is None else value + weight * (x - value)

    def _learn_step(self, t: float) -> None:
        if math.isnan(self.first):
            self.first = t
        elif not self.width and len(self.steps) < self.STEPS_TO_LEARN:
            self.steps.append(t - self.last)
            if len(self.steps) == self.STEPS_TO_LEARN:
                step = sorted(self.steps)[self.STEPS_TO_LEARN // 2]
                self.width = max(step, self.params.period / self.params.season_bins)
        self.last = t

    def _cell(self, t: float) -> int:
        return int((t % self.params.period) // self.width)


def _ew(average: float, x: float, weight: float) -> float:
    """Exponentially weighted average; NaN means none yet."""
    return x if math.isnan(average) else average + weight * (x - average)


class EnvelopeState:
    """The streaming detector: feed samples in time order, get a reading per sample."""

    DEVIATION_FLOOR = 0.1  # of the value envelope's width

    def __init__(self, params: EnvelopeParams | None = None) -> None:
        self.params = params or EnvelopeParams()
        self.means = [_Mean(k) for k in self.params.scales]
        self.extremes = [_Extremes(self.params.memory) for _ in self.params.scales]
        self.deviation = _Extremes(self.params.memory)
        self.profile = _Profile(self.params)
        self.samples = 0
        self.first = math.nan

    def learning(self, t: float) -> bool:
        """True while too little is known to judge: no alarm then."""
        p = self.params
        return self.samples <= p.learn_samples or not t - self.first >= p.learn_seconds

    def update(self, t: float, x: float) -> Reading | None:
        """Judge ``x`` at ``t`` against what came before, then learn from it."""
        if not math.isfinite(x):
            return None
        self.samples += 1
        if math.isnan(self.first):
            self.first = t
        best: Reading | None = None
        for k, mean, extremes in zip(self.params.scales, self.means, self.extremes, strict=True):
            m = mean.add(x)
            if m is None:
                continue
            margin = self._margin(min(extremes.seen, self.params.memory))
            best = _worse(best, extremes.read(m, margin, _feature(k), 0.0))
            extremes.add(m)
        expected = self.profile.expect(t)
        # The deviations start two days in: they learn for as long as the series did.
        if expected is not None and self.deviation.seen < self.params.learn_samples:
            self.deviation.add(x - expected)
        elif expected is not None:
            margin = self._margin(min(self.deviation.seen, self.params.memory))
            # A deviation that is a sliver of the series' range is not news, however
            # perfect the profile has been.
            floor = self.DEVIATION_FLOOR * self.extremes[0].width
            reading = self.deviation.read(x - expected, margin, "daily", expected, floor)
            best = _worse(best, reading)
            self.deviation.add(x - expected)
        self.profile.add(t, x)
        return best

    def _margin(self, n: float) -> float:
        """``margin``, widened while the envelope rests on few independent samples.

        n iid normal samples are exceeded by m widths of their range with probability about
        n^-(1 + 4m) (the range is 2 sqrt(2 ln n) sigma and the tail beyond the maximum falls
        by n^-4m over m widths). Solving for a chance of ``false_alarm`` per sample gives the
        margin a young series needs; with more history the plain ``margin`` holds.
        """
        if n <= 2:
            return math.inf
        needed = (math.log(1 / self.params.false_alarm) / math.log(n) - 1) / 4
        return max(self.params.margin, needed)


def _feature(k: int) -> str:
    return "value" if k == 1 else f"{k}-sample mean"


def _worse(a: Reading | None, b: Reading | None) -> Reading | None:
    if a is None:
        return b
    return a if b is None or a.score >= b.score else b


def detect_envelope(
    series: TimeSeries, now: float, params: EnvelopeParams | None = None
) -> list[Anomaly]:
    """One anomaly per incident among the samples at or before ``now``, dated at detection."""
    params = params or EnvelopeParams()
    series = upto(series, now)
    state = EnvelopeState(params)
    incidents = Incidents(params.min_gap)
    for i, (t, x) in enumerate(zip(series.timestamps, series.values, strict=True)):
        reading = state.update(t, x)
        if reading is None or state.learning(t):
            incidents.tick(i)
            continue
        outside = not reading.low <= reading.observed <= reading.high
        incidents.observe(i, t, x, reading if outside else None)
    return to_anomalies(NAME, incidents.finish(len(series.timestamps) - 1), _explain)


def _explain(reading: Reading) -> str:
    where = "above" if reading.observed > reading.high else "below"
    if reading.feature == "daily":
        return (
            f"The value {num(reading.observed)} is {where} the band {num(reading.low)} to "
            f"{num(reading.high)} for this time of day (daily profile {num(reading.expected)}, "
            f"band from the largest deviations seen before): {reading.score:.3g} band widths "
            "outside."
        )
    what = "value" if reading.feature == "value" else reading.feature
    return (
        f"The {what} {num(reading.observed)} is {where} the envelope of past {what}s, "
        f"{num(reading.low)} to {num(reading.high)} with its margin (middle "
        f"{num(reading.expected)}): {reading.score:.3g} envelope widths outside."
    )
