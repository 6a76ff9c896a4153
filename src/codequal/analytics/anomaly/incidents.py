"""Alarm hygiene for streaming detectors: one anomaly per incident, dated when detected.

A detector that judges sample by sample raises an alarm on every sample of a long incident.
An operator wants one: the first alarm opens an incident at its own time (the moment it was
detected, never back-dated to when the series began to drift), later alarms extend it, and
``min_gap`` samples without an alarm close it. The next alarm after that is a new incident,
so two alarms are never closer than ``min_gap`` samples unless they are the same incident.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from codequal.analytics.anomaly.base import Anomaly, Status
from codequal.vocabulary import iso_timestamp


class Reading(NamedTuple):
    """What one sample looked like to a streaming detector."""

    score: float  # larger is worse; the detector's own unit
    feature: str  # what was compared: "value", "8-sample mean", "daily"
    observed: float  # the feature's value
    expected: float  # the feature's expected value, in the series' units
    low: float  # the normal band, in the series' units
    high: float


class Hit(NamedTuple):
    position: int
    t: float
    value: float  # the sample's value
    reading: Reading


class Incident(NamedTuple):
    first: Hit  # the detection
    peak: Hit
    last: Hit
    alarms: int
    status: Status


class Incidents:
    """Groups per-sample alarms, in time order, into incidents."""

    def __init__(self, min_gap: int) -> None:
        self.min_gap = min_gap
        self.done: list[Incident] = []
        self.open: Incident | None = None

    def observe(self, index: int, t: float, value: float, alarm: Reading | None) -> None:
        """The verdict on sample ``index``: an alarm reading, or None for a normal sample."""
        self.tick(index)
        if alarm is None:
            return
        hit = Hit(index, t, value, alarm)
        if self.open is None:
            self.open = Incident(hit, hit, hit, 1, "open")
            return
        peak = hit if alarm.score > self.open.peak.reading.score else self.open.peak
        self.open = self.open._replace(peak=peak, last=hit, alarms=self.open.alarms + 1)

    def tick(self, index: int) -> None:
        """Sample ``index`` passed (judged or not): close an incident that has gone quiet."""
        if self.open is not None and index - self.open.last.position >= self.min_gap:
            self.done.append(self.open._replace(status="closed"))
            self.open = None

    def finish(self, last_index: int) -> list[Incident]:
        """Every incident; the last is ``open`` when it had an alarm within ``min_gap``."""
        self.tick(last_index)
        return [*self.done, *([self.open] if self.open else [])]


def to_anomalies(
    detector: str, incidents: list[Incident], explain: Callable[[Reading], str]
) -> list[Anomaly]:
    """The records: dated at detection, numbers at the incident's worst sample."""
    return [_anomaly(detector, i, explain) for i in incidents]


def _anomaly(detector: str, incident: Incident, explain: Callable[[Reading], str]) -> Anomaly:
    first, peak, last = incident.first, incident.peak, incident.last
    r = peak.reading
    n = incident.alarms
    text = f"Detected at {iso_timestamp(first.t)}"
    if n > 1:
        text += f"; {n} anomalous samples until {iso_timestamp(last.t)}"
    text += "; still anomalous." if incident.status == "open" else "."
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
        explanation=f"{explain(r)} {text}",
        details={"observed": r.observed, "alarms": float(n)},
    )
