"""The walk every baseline detector shares: judge each sample, report incidents, not samples.

A detector supplies a *rule*: given a sample and its baseline history, the expected value and
the band around it. This module does the rest, the same way for every detector:

- samples without enough history, or with too little traffic behind them, get no verdict;
- anomalous samples never become baseline, so a spike does not teach the detector that spikes
  are normal;
- an anomalous sample raises an alarm only when it is news (``news``): fewer than ``repeats``
  excursions of the last ``memory`` went half as far. On a heavy-tailed series the band is
  crossed every day; the plan's threshold alone raised thousands of alarms on NAB;
- one anomaly per incident (``incidents``): an alarm opens it, dated when it was detected;
  later anomalous samples on its side prolong it; ``merge_gap`` without one closes it;
- nothing alarms for ``learn`` after the first verdict: the habits of the series are not
  known yet (the samples are still judged and remembered);
- when at least half the samples judged over the last ``adapt_after`` are anomalous in the
  same direction, from the start of that time to the latest, it is a level shift, not an
  incident: its incident ends with status ``adapted``, the baseline moves to the new level,
  and the detector stops reporting it instead of alerting for weeks. Half, not all: a shift
  near the threshold flickers across it, and counting only consecutive samples would never
  see it persist.
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
    TimeSeries,
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
from codequal.analytics.anomaly.incidents import Hit, Incident, Incidents, detection_text
from codequal.analytics.anomaly.news import NewsGate, exceedance


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


Rule = Callable[[float, float | None, History], Judgement]


def usable_samples(series: TimeSeries, min_traffic: float) -> list[bool]:
    """Samples that may be judged and used as baseline: finite, with enough traffic."""
    weights = series.weights
    return [
        math.isfinite(v) and (weights is None or weights[i] >= min_traffic)
        for i, v in enumerate(series.values)
    ]


def scan(series: TimeSeries, now: float, params: ScanParams, rule: Rule) -> list[Incident[Judged]]:
    """Judge every sample at or before ``now`` against its baseline; the incidents."""
    series = upto(series, now)
    usable = usable_samples(series, params.min_traffic)
    first = next((t for t, ok in zip(series.timestamps, usable, strict=True) if ok), None)
    if first is None:
        return []
    judgeable = list(usable)
    # Both lists change as the walk goes: anomalous samples stop being baseline, and an
    # adopted shift re-levels the values before it.
    past = Past(series.timestamps, list(series.values), usable, first, regime_start=first)
    walk = _Walk(params)
    for i, t in enumerate(series.timestamps):
        history = select_history(past, i, params) if judgeable[i] else None
        if history is None:
            walk.incidents.tick(t)
            continue
        value = series.values[i]
        weight = None if series.weights is None else series.weights[i]
        judgement = rule(value, weight, history)
        point = Judged(i, t, value, weight, judgement, history.basis, history.kind)
        if point.direction is not None:
            usable[i] = False
        shift = walk.observe(point)
        if shift is not None:
            walk.adopt(_adopt(past, shift))
    return walk.incidents.finish(now)


class _Walk:
    """What a verdict becomes: an alarm when it is news, part of an incident, or a shift."""

    def __init__(self, params: ScanParams) -> None:
        self.params = params
        self.incidents: Incidents[Judged] = Incidents(params.merge_gap)
        self.gate = NewsGate(params.memory, params.repeats, params.margin, params.merge_gap)
        self.recent = _Recent(params.adapt_after)
        self.since = math.nan  # the first verdict: no alarm for `learn` seconds after it

    def observe(self, p: Judged) -> list[Judged] | None:
        """Take one verdict; the samples of a shift that has now lasted ``adapt_after``."""
        if math.isnan(self.since):
            self.since = p.t
        j = p.judgement
        news = self.gate.observe(p.t, exceedance(p.value, j.expected, j.low, j.high), p.direction)
        if p.direction is not None:
            hit = Hit(p.t, p.t, p.value, j.score, p)
            if news and p.t - self.since >= self.params.learn:
                self.incidents.alarm(hit)
            elif self.incidents.open and self.incidents.open.first.reading.direction == p.direction:
                self.incidents.extend(hit)
        else:
            self.incidents.tick(p.t)
        direction = self.recent.add(p)
        if direction is None:
            return None
        start = next(k for k, q in enumerate(self.recent.points) if q.direction == direction)
        shifted = list(self.recent.points)[start:]
        self.recent.clear()
        return shifted

    def adopt(self, shift: str) -> None:
        """The shift is the new normal: its incident ends, its exceedances are forgotten."""
        self.incidents.close("adapted", shift)
        self.gate.forget()


class _Recent:
    """The verdicts of the last ``adapt_after`` seconds, with running counts per direction."""

    def __init__(self, adapt_after: float) -> None:
        self.adapt_after = adapt_after
        self.points: deque[Judged] = deque()
        self.counts = {"up": 0, "down": 0, None: 0}

    def add(self, p: Judged) -> Direction | None:
        """Add a verdict; the direction of a shift that has now lasted ``adapt_after``.

        At least half of the window's verdicts must be anomalous in that direction, the
        first of them in the window's first twelfth (30 minutes of the default 6 hours:
        samples do not fall exactly on its edge) and the latest one too.
        """
        self.points.append(p)
        self.counts[p.direction] += 1
        while self.points[0].t < p.t - self.adapt_after:
            self.counts[self.points.popleft().direction] -= 1
        direction: Direction = "up" if self.counts["up"] >= self.counts["down"] else "down"
        # A shift that has already ended (a long bump, back to normal now) is no new normal.
        if p.direction != direction or 2 * self.counts[direction] < len(self.points):
            return None
        began = next(q.t for q in self.points if q.direction == direction)
        return direction if began <= p.t - self.adapt_after * 11 / 12 else None

    def clear(self) -> None:
        self.points.clear()
        self.counts = {"up": 0, "down": 0, None: 0}


def _adopt(past: Past, shifted: list[Judged]) -> str:
    """Make the shift the new normal: re-level what came before it, let it be baseline."""
    shift = _relevel(past, shifted)
    for p in shifted:
        past.usable[p.position] = True
    return shift


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


def incident_anomaly(
    detector: str,
    incident: Incident[Judged],
    explain: Callable[[Judged], str],
    details: Callable[[Judged], Mapping[str, float]],
) -> Anomaly:
    """The record for one incident: dated at detection, the numbers at its worst sample."""
    peak = incident.peak.reading
    j = peak.judgement
    return Anomaly(
        detector=detector,
        start=incident.first.t,
        end=incident.last.t,
        peak_at=peak.t,
        peak=peak.value,
        baseline=j.expected,
        band=(j.low, j.high),
        score=j.score,
        direction=peak.direction or "up",
        status=incident.status,
        explanation=f"{explain(peak)} {detection_text(incident)}",
        details=dict(details(peak)),
    )


def band_text(j: Judgement) -> str:
    """The normal range in explanations: ``band 1.2 to 3.4``, or ``alert above 3.4``."""
    if math.isinf(j.low):
        return f"alert above {num(j.high)}"
    return f"band {num(j.low)} to {num(j.high)}"
