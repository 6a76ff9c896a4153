"""Alarm hygiene for streaming detectors: one anomaly per incident, dated when detected.

A detector that judges sample by sample raises an alarm on every sample of a long incident.
An operator wants one: the first alarm opens an incident at its own time (the moment it was
detected, never back-dated to when the series began to drift), later alarms extend it, and
``min_gap`` without an alarm closes it. The next alarm after that is a new incident, so two
alarms are never closer than ``min_gap`` unless they are the same incident. ``min_gap`` is
counted in whatever positions the detector passes: sample indexes (``envelope``) or seconds
(the baseline detectors, whose settings are durations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from codequal.analytics.anomaly.base import Anomaly, Status
from codequal.vocabulary import iso_timestamp

R = TypeVar("R")


class Reading(NamedTuple):
    """What one sample looked like to a streaming detector."""

    score: float  # larger is worse; the detector's own unit
    feature: str  # what was compared: "value", "8-sample mean", "daily"
    observed: float  # the feature's value
    expected: float  # the feature's expected value, in the series' units
    low: float  # the normal band, in the series' units
    high: float


class Hit(NamedTuple, Generic[R]):
    """One anomalous sample: where, when, its value and score, and the detector's verdict."""

    position: float  # sample index or seconds: what ``min_gap`` counts
    t: float
    value: float  # the sample's value
    score: float
    reading: R


class Incident(NamedTuple, Generic[R]):
    first: Hit[R]  # the detection
    peak: Hit[R]
    last: Hit[R]
    alarms: int  # anomalous samples in it
    status: Status
    note: str = ""  # for an adapted incident: how the level moved


class Incidents(Generic[R]):
    """Groups per-sample alarms, in time order, into incidents."""

    def __init__(self, min_gap: float) -> None:
        self.min_gap = min_gap
        self.done: list[Incident[R]] = []
        self.open: Incident[R] | None = None

    def alarm(self, hit: Hit[R]) -> None:
        """An alarm: opens an incident, or extends the open one."""
        self.tick(hit.position)
        if self.open is None:
            self.open = Incident(hit, hit, hit, 1, "open")
        else:
            self.extend(hit)

    def extend(self, hit: Hit[R]) -> None:
        """An anomalous sample that is no alarm of its own: it only prolongs an open incident."""
        self.tick(hit.position)
        if self.open is None:
            return
        peak = hit if hit.score > self.open.peak.score else self.open.peak
        self.open = self.open._replace(peak=peak, last=hit, alarms=self.open.alarms + 1)

    def tick(self, position: float) -> None:
        """Time passed (a sample judged or not): close an incident that has gone quiet."""
        if self.open is not None and position - self.open.last.position >= self.min_gap:
            self.close("closed")

    def close(self, status: Status, note: str = "") -> None:
        """End the open incident now: ``adapted`` when it became the new normal."""
        if self.open is not None:
            self.done.append(self.open._replace(status=status, note=note))
            self.open = None

    def finish(self, position: float) -> list[Incident[R]]:
        """Every incident; the last is ``open`` when it had an alarm within ``min_gap``."""
        self.tick(position)
        return [*self.done, *([self.open] if self.open else [])]


def to_anomalies(
    detector: str, incidents: list[Incident[Reading]], explain: Callable[[Reading], str]
) -> list[Anomaly]:
    """The records: dated at detection, numbers at the incident's worst sample."""
    return [_anomaly(detector, i, explain) for i in incidents]


def detection_text(incident: Incident[R]) -> str:
    """When it was detected, how many samples, and whether it still lasts."""
    first, last, n = incident.first, incident.last, incident.alarms
    text = f"Detected at {iso_timestamp(first.t)}"
    if n > 1:
        text += f"; {n} anomalous samples until {iso_timestamp(last.t)}"
    if incident.status == "adapted":
        return f"{text}; it persisted, so it is now the new normal ({incident.note})."
    return text + ("; still anomalous." if incident.status == "open" else ".")


def _anomaly(
    detector: str, incident: Incident[Reading], explain: Callable[[Reading], str]
) -> Anomaly:
    first, peak, last = incident.first, incident.peak, incident.last
    r = peak.reading
    return Anomaly(
        detector=detector,
        start=first.t,
        end=last.t,
        peak_at=peak.t,
        peak=peak.value,
        baseline=r.expected,
        band=(r.low, r.high),
        score=r.score,
        direction="up" if r.observed > r.high else "down",
        status=incident.status,
        explanation=f"{explain(r)} {detection_text(incident)}",
        details={"observed": r.observed, "alarms": float(incident.alarms)},
    )
