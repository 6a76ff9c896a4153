"""The records every anomaly detector shares: its input series, its verdict, its protocol.

Detectors are pure: a function of a :class:`TimeSeries`, their parameters and an explicit
``now``. They never read the clock, a store or the network, so the scheduler can feed them
from PromQL range queries and ``codequal anomaly scan`` can feed them from a CSV file.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal, NamedTuple, Protocol

from codequal.exceptions import InvalidInput
from codequal.vocabulary import iso_timestamp

Direction = Literal["up", "down"]
# open: still anomalous at the last judged sample; closed: it ended; adapted: it lasted long
# enough to become the new normal, so the detector stopped reporting it.
Status = Literal["open", "closed", "adapted"]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0
WEEK = 7 * DAY


class SeriesError(InvalidInput):
    """A series a detector cannot use (mismatched lengths, repeated timestamps)."""


class TimeSeries(NamedTuple):
    """Samples in time order: Unix seconds, values, and optionally the events behind each value.

    ``weights`` is the traffic behind a sample (analyses in the step for a failure ratio or a
    p99); detectors use it for their minimum-traffic rule. ``None`` means unknown, and then
    that rule cannot apply. Non-finite values (PromQL's NaN for 0/0) are gaps, not errors.
    """

    timestamps: tuple[float, ...]
    values: tuple[float, ...]
    weights: tuple[float, ...] | None = None

    @classmethod
    def of(
        cls,
        timestamps: Iterable[float],
        values: Iterable[float],
        weights: Iterable[float] | None = None,
    ) -> TimeSeries:
        """Validate and sort; a repeated timestamp is an error (which sample would be true?)."""
        ts, vs = tuple(map(float, timestamps)), tuple(map(float, values))
        ws = None if weights is None else tuple(map(float, weights))
        if len(ts) != len(vs) or (ws is not None and len(ws) != len(ts)):
            raise SeriesError(
                f"timestamps, values and weights differ in length: {len(ts)}, {len(vs)}, "
                f"{'-' if ws is None else len(ws)}"
            )
        order = sorted(range(len(ts)), key=ts.__getitem__)
        for a, b in pairwise(order):
            if ts[a] == ts[b]:
                raise SeriesError(f"timestamp {iso_timestamp(ts[a])} appears twice")
        return cls(
            tuple(ts[i] for i in order),
            tuple(vs[i] for i in order),
            None if ws is None else tuple(ws[i] for i in order),
        )

    @classmethod
    def from_millis(
        cls,
        timestamps_ms: Iterable[int],
        values: Iterable[float],
        weights: Iterable[float] | None = None,
    ) -> TimeSeries:
        """From the PromQL engine's ``Series`` (integer milliseconds)."""
        return cls.of((t / 1000.0 for t in timestamps_ms), values, weights)


@dataclass(frozen=True)
class Anomaly:
    """One anomaly window and why: the numbers at its most extreme sample.

    ``score`` is the detector's own measure, larger is worse: times the baseline for the
    ratio detectors, robust z for ``robust_z``, horizon / minutes left for exhaustion.
    """

    detector: str
    start: float  # Unix seconds of the first anomalous sample
    end: float  # Unix seconds of the last anomalous sample
    peak_at: float
    peak: float  # the observed value at peak_at
    baseline: float  # what was expected at peak_at
    band: tuple[float, float]  # the normal range at peak_at
    score: float
    direction: Direction
    status: Status
    explanation: str
    details: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; times as UTC ISO 8601."""
        return {
            "detector": self.detector,
            "start": iso_timestamp(self.start),
            "end": iso_timestamp(self.end),
            "peak_at": iso_timestamp(self.peak_at),
            "peak": _finite(self.peak),
            "baseline": _finite(self.baseline),
            "band": [_finite(self.band[0]), _finite(self.band[1])],
            "score": _finite(self.score),
            "direction": self.direction,
            "status": self.status,
            "explanation": self.explanation,
            "details": {k: _finite(v) for k, v in self.details.items()},
        }


def _finite(x: float) -> float | None:
    # JSON has no NaN or infinity; null says "no number" without breaking parsers.
    return x if math.isfinite(x) else None


class Detector(Protocol):
    """A configured detector: parameters bound, ready to judge any series."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str: ...

    def detect(self, series: TimeSeries, now: float) -> list[Anomaly]:
        """Every anomaly window among the samples at or before ``now``."""
        ...


def upto(series: TimeSeries, now: float) -> TimeSeries:
    """The samples at or before ``now``: a backtest must not see the future."""
    n = bisect_right(series.timestamps, now)
    if n == len(series.timestamps):
        return series
    ws = None if series.weights is None else series.weights[:n]
    return TimeSeries(series.timestamps[:n], series.values[:n], ws)


def duration_text(seconds: float) -> str:
    """``45 s``, ``30 min``, ``6 h``, ``2.5 d``: durations in explanations."""
    for unit, size in (("d", DAY), ("h", HOUR), ("min", MINUTE)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def num(x: float) -> str:
    """Four significant digits, no exponent for everyday magnitudes."""
    return f"{x:.4g}"
