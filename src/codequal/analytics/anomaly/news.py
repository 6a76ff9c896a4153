"""Is a verdict news, or a habit of the series?

A threshold in units of the series' own spread (twice the baseline, 1.5x the p99, 4 robust z)
is crossed again and again by a heavy-tailed or bursty series: real operations series are
both, and the plan's checks raised thousands of alarms on NAB's. What an operator calls an
incident is an excursion beyond what the series keeps doing. So each excursion outside the
band (anomalous samples on one side, closer than ``merge_gap``) is remembered by its peak
*exceedance* (how far outside the band, in band widths: 1 at the band's edge), and a verdict
is news only while fewer than ``repeats`` excursions of the last ``memory`` on its side went
``1 / (1 + margin)`` as far: with the defaults, fewer than 5 in two weeks went half as far.

Why these numbers. Five in two weeks: a failure spike that comes back every few days is an
incident each time (and ``bench/eval_anomaly.py`` plants four a fortnight); one that comes
more often than every third day is what the series does. Half as far: on a heavy-tailed
series excursions half the size are several times more frequent, so a burst there is news
only when it dwarfs the recent ones, and on a stationary series the alarms settle to a few
per ``memory``; a series whose band is crossed only by real incidents has no such crowd
of smaller excursions, and each incident alarms as the plan's threshold alone would.

The excursion in progress joins the memory when it ends. One that is adopted as a level
shift never does (``forget``): it was measured against a level that no longer holds, and
would mute the next incident on the new level.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

from codequal.analytics.anomaly.base import Direction


def exceedance(value: float, expected: float, low: float, high: float) -> float:
    """How far ``value`` is from ``expected`` toward the band's edge: 1 at the edge.

    Positive above ``expected``, negative below; 0 on a side the band leaves open.
    """
    if value >= expected:
        room = high - expected
        return (value - expected) / room if 0 < room < math.inf else 0.0
    room = expected - low
    return -(expected - value) / room if 0 < room < math.inf else 0.0


class _Peaks:
    """The peaks of one side's excursions in the last ``memory`` seconds, sorted."""

    __slots__ = ("memory", "order", "sorted")

    def __init__(self, memory: float) -> None:
        self.memory = memory
        self.order: deque[tuple[float, float]] = deque()  # (end time, peak) as they came
        self.sorted: list[float] = []

    def add(self, t: float, peak: float) -> None:
        self.order.append((t, peak))
        insort(self.sorted, peak)

    def nth_largest(self, n: int, now: float) -> float:
        """The ``n``-th largest peak still remembered at ``now``; 0 when there are fewer."""
        while self.order and self.order[0][0] <= now - self.memory:
            _, old = self.order.popleft()
            del self.sorted[bisect_left(self.sorted, old)]
        return self.sorted[-n] if len(self.sorted) >= n else 0.0


class NewsGate:
    """Past excursions on each side, and whether a new exceedance goes beyond the habit."""

    __slots__ = ("current", "last", "margin", "merge_gap", "peaks", "repeats", "side")

    def __init__(self, memory: float, repeats: int, margin: float, merge_gap: float) -> None:
        self.peaks: dict[Direction, _Peaks] = {"up": _Peaks(memory), "down": _Peaks(memory)}
        self.repeats = repeats
        self.margin = margin
        self.merge_gap = merge_gap
        self.side: Direction | None = None  # the excursion in progress
        self.current = 0.0  # its peak, as a positive exceedance
        self.last = -math.inf  # its last anomalous sample

    def observe(self, t: float, e: float, side: Direction | None) -> bool:
        """Take the verdict at ``t`` (exceedance ``e``, anomalous on ``side`` or None).

        True when it is anomalous and news: beyond the ``repeats``-th largest excursion of
        the memory on its side by ``margin`` of that excursion.
        """
        quiet = t - self.last >= self.merge_gap
        if self.side is not None and (quiet or (side is not None and side != self.side)):
            self._end()
        if side is None:
            return False
        habit = self.peaks[side].nth_largest(self.repeats, t)
        self.side, self.last = side, t
        self.current = max(self.current, abs(e))
        return abs(e) > habit * (1 + self.margin)

    def forget(self) -> None:
        """Drop the excursion in progress: it became the new normal."""
        self.side, self.current = None, 0.0

    def _end(self) -> None:
        if self.side is not None:
            self.peaks[self.side].add(self.last, self.current)
        self.side, self.current = None, 0.0
