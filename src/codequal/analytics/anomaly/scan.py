"""The walk every baseline detector shares: judge each sample, group verdicts into windows.

A detector supplies a *rule*: given a sample and its baseline history, the expected value and
the band around it. This module does the rest, the same way for every detector:

- samples without enough history, or with too little traffic behind them, get no verdict;
- anomalous samples never become baseline, so a spike does not teach the detector that spikes
  are normal;
- anomalous samples closer than ``merge_gap`` form one window;
- when at least half the samples judged over the last ``adapt_after`` are anomalous in the
  same direction, from the start of that time, it is a level shift, not an incident: its
  windows merge into one with status ``adapted``, the baseline moves to the new level, and
  the detector stops reporting it instead of alerting for weeks. Half, not all: a shift near
  the threshold flickers across it, and counting only consecutive samples would never see it
  persist.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable, Mapping
from typing import NamedTuple

from codequal.analytics.anomaly.base import (
    Anomaly,
    Direction,
    Status,
    TimeSeries,
    duration_text,
    num,
    upto,
)
from codequal.analytics.anomaly.baseline import (
    BaselineKind,
    History,
    Past,
    ScanParams,
    select_history,
)
from codequal.vocabulary import iso_timestamp


class Judgement(NamedTuple):
    """A rule's verdict on one sample: expected value, normal band, and score."""

    expected: float
    low: float
    high: float
    score: float


class Judged(NamedTuple):
    """One sample with its verdict."""

    position: int  # in the series
    t: float
    value: float
    weight: float | None
    judgement: Judgement
    basis: str  # where the baseline came from, for the explanation
    kind: BaselineKind | None = None  # None for detectors without a history baseline

    @property
    def direction(self) -> Direction | None:
        """``up`` above the band, ``down`` below it, None inside."""
        if self.value > self.judgement.high:
            return "up"
        if self.value < self.judgement.low:
            return "down"
        return None


class Run(NamedTuple):
    """The anomalous samples of one window, in time order."""

    points: tuple[Judged, ...]
    status: Status
    shift: str = ""  # how the level moved, for an adapted window

    @property
    def peak(self) -> Judged:
        return max(self.points, key=lambda p: p.judgement.score)


Rule = Callable[[float, float | None, History], Judgement]


class RunBuilder:
    """Groups verdicts, in time order, into windows of same-direction anomalous samples."""

    def __init__(self, merge_gap: float) -> None:
        self.merge_gap = merge_gap
        self.open: list[Judged] = []
        self.runs: list[Run] = []

    def observe(self, p: Judged) -> None:
        direction = p.direction
        near = bool(self.open) and p.t - self.open[-1].t <= self.merge_gap
        if self.open and (
            not near or (direction is not None and self.open[-1].direction != direction)
        ):
            self.close("closed")
        if direction is not None:
            self.open.append(p)

    def close(self, status: Status, shift: str = "") -> None:
        if self.open:
            self.runs.append(Run(tuple(self.open), status, shift))
            self.open = []

    def adopt(self, since: float, direction: Direction, shift: str) -> None:
        """Merge the windows of one shift (anomalous since ``since``) into an adapted one."""
        if self.open and self.open[-1].direction != direction:
            self.close("closed")
        merged = list(self.open)
        self.open = []
        while self.runs and self.runs[-1].points[-1].t >= since:
            last = self.runs[-1]
            if last.status == "adapted" or last.points[0].direction != direction:
                break
            merged[:0] = self.runs.pop().points
        if merged:
            self.runs.append(Run(tuple(merged), "adapted", shift))

    def finish(self, now: float) -> list[Run]:
        """The windows; the last is ``open`` when its last sample is within the merge gap."""
        if self.open:
            self.close("open" if now - self.open[-1].t <= self.merge_gap else "closed")
        return self.runs


def usable_samples(series: TimeSeries, min_traffic: float) -> list[bool]:
    """Samples that may be judged and used as baseline: finite, with enough traffic."""
    weights = series.weights
    return [
        math.isfinite(v) and (weights is None or weights[i] >= min_traffic)
        for i, v in enumerate(series.values)
    ]


def scan(series: TimeSeries, now: float, params: ScanParams, rule: Rule) -> list[Run]:
    """Judge every sample at or before ``now`` against its baseline; the anomalous windows."""
    series = upto(series, now)
    usable = usable_samples(series, params.min_traffic)
    first = next((t for t, ok in zip(series.timestamps, usable, strict=True) if ok), None)
    if first is None:
        return []
    judgeable = list(usable)
    # Both lists change as the walk goes: anomalous samples stop being baseline, and an
    # adopted shift re-levels the values before it.
    past = Past(series.timestamps, list(series.values), usable, first, regime_start=first)
    runs = RunBuilder(params.merge_gap)
    recent = _Recent(params.adapt_after)
    for i, t in enumerate(series.timestamps):
        history = select_history(past, i, params) if judgeable[i] else None
        if history is None:
            continue
        value = series.values[i]
        weight = None if series.weights is None else series.weights[i]
        judgement = rule(value, weight, history)
        point = Judged(i, t, value, weight, judgement, history.basis, history.kind)
        runs.observe(point)
        if point.direction is not None:
            usable[i] = False
        direction = recent.add(point, params.merge_gap)
        if direction is not None:
            _adopt(runs, past, list(recent.points), direction)
            recent.clear()
    return runs.finish(now)


class _Recent:
    """The verdicts of the last ``adapt_after`` seconds, with running counts per direction."""

    def __init__(self, adapt_after: float) -> None:
        self.adapt_after = adapt_after
        self.points: deque[Judged] = deque()
        self.counts = {"up": 0, "down": 0, None: 0}

    def add(self, p: Judged, merge_gap: float) -> Direction | None:
        """Add a verdict; the direction of a shift that has now lasted ``adapt_after``.

        At least half of the window's verdicts must be anomalous in that direction, the
        first of them at the start of the window.
        """
        self.points.append(p)
        self.counts[p.direction] += 1
        while self.points[0].t < p.t - self.adapt_after:
            self.counts[self.points.popleft().direction] -= 1
        direction: Direction = "up" if self.counts["up"] >= self.counts["down"] else "down"
        if 2 * self.counts[direction] < len(self.points):
            return None
        began = next(q.t for q in self.points if q.direction == direction)
        return direction if began <= p.t - self.adapt_after + merge_gap else None

    def clear(self) -> None:
        self.points.clear()
        self.counts = {"up": 0, "down": 0, None: 0}


def _adopt(runs: RunBuilder, past: Past, recent: list[Judged], direction: Direction) -> None:
    """Make the shift the new normal: re-level what came before it, let it be baseline."""
    start = next(k for k, p in enumerate(recent) if p.direction == direction)
    shifted = recent[start:]
    shift = _relevel(past, shifted)
    for p in shifted:
        past.usable[p.position] = True
    runs.adopt(shifted[0].t, direction, shift)


def _relevel(past: Past, points: list[Judged]) -> str:
    """Move the baseline to the level of the shifted samples; say how.

    Against a trailing window, the window simply starts again at the shift. Against a
    seasonal baseline, the history before the shift is scaled (or offset) to the new level,
    so the same hour on earlier days agrees with it. A first weekend judged against a
    trailing window of Friday is not a shift of the weekdays: that is why a trailing-window
    shift leaves older history alone.
    """
    # The later half is the level now: after a ramp the early samples are still climbing.
    later = points[len(points) // 2 :]
    start = points[0].position
    if later[-1].kind == "trailing":
        past.regime_start = points[0].t
        return "the trailing window restarts at the shift"
    if all(p.value > 0 and p.judgement.expected > 0 for p in later):
        factor = statistics.median(p.value / p.judgement.expected for p in later)
        past.values[:start] = [v * factor for v in past.values[:start]]
        return f"level x{factor:.3g}"
    offset = statistics.median(p.value - p.judgement.expected for p in later)
    past.values[:start] = [v + offset for v in past.values[:start]]
    return f"level {offset:+.4g}"


def to_anomaly(
    detector: str,
    run: Run,
    explain: Callable[[Judged], str],
    details: Callable[[Judged], Mapping[str, float]] | None = None,
) -> Anomaly:
    """The record for one window: the numbers at its peak, the explanation in words."""
    peak = run.peak
    j = peak.judgement
    return Anomaly(
        detector=detector,
        start=run.points[0].t,
        end=run.points[-1].t,
        peak_at=peak.t,
        peak=peak.value,
        baseline=j.expected,
        band=(j.low, j.high),
        score=j.score,
        direction=peak.direction or "up",
        status=run.status,
        explanation=f"{explain(peak)} {window_text(run)}",
        details=dict(details(peak)) if details else {},
    )


def window_text(run: Run) -> str:
    """How long the window lasted and how it ended, in one or two sentences."""
    first, last = run.points[0], run.points[-1]
    n = len(run.points)
    text = f"{n} anomalous sample{'s' if n != 1 else ''} from {iso_timestamp(first.t)}"
    if last.t > first.t:
        text += f" over {duration_text(last.t - first.t)}"
    if run.status == "adapted":
        return f"{text}; it persisted, so it is now the new normal ({run.shift})."
    if run.status == "open":
        return f"{text}; still anomalous at the last sample."
    return f"{text}."


def band_text(j: Judgement) -> str:
    """The normal range in explanations: ``band 1.2 to 3.4``, or ``alert above 3.4``."""
    if math.isinf(j.low):
        return f"alert above {num(j.high)}"
    return f"band {num(j.low)} to {num(j.high)}"
