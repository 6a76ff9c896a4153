"""A subquery's evaluated steps, kept as compact per-series columns that slide forward.

A range query asks the same subquery for overlapping windows at every step: the steps it
evaluated for one window are kept (16 bytes a point, charged to the query's budget) and only
the new steps are evaluated for the next; points that fell out of every later window are
dropped and released.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable

from codequal.tsdb.promql.limits import Budget
from codequal.tsdb.promql.types import Labels, Matrix, PromQLError, Sample, Series, Value, Vector

Rows = dict[Labels, tuple["array[int]", "array[float]"]]


def append_points(rows: Rows, t: int, samples: Iterable[Sample]) -> None:
    """Add each sample at ``t`` to its series' columns."""
    for s in samples:
        row = rows.get(s.labels)
        if row is None:
            row = rows[s.labels] = (array("q"), array("d"))
        row[0].append(t)
        row[1].append(s.value)


class SubqueryWindow:
    """The points a subquery has evaluated so far, at its step, by series."""

    def __init__(self, step: int, budget: Budget) -> None:
        self.step = step
        self.budget = budget
        self.first = 0  # the oldest step time held
        self.next = 0  # the next step time to evaluate; nothing held when next == first
        self.rows: Rows = {}
        self.held = 0

    def window(self, first: int, last: int, evaluate: Callable[[int], Value]) -> Matrix:
        """The subquery's points at steps ``first .. last`` (multiples of the step)."""
        if first < self.first or first > self.next:
            self._drop_all()
            self.first = self.next = first
        elif first > self.first:
            self._drop_before(first)
        for ti in range(max(self.next, first), last + 1, self.step):
            self._append(ti, evaluate(ti))
            self.next = ti + self.step
        out = []
        for labels, (ts, vs) in self.rows.items():
            lo, hi = bisect_left(ts, first), bisect_left(ts, last + 1)
            if lo < hi:
                out.append(Series(labels, ts[lo:hi], vs[lo:hi]))
        return Matrix(out)

    def _append(self, ti: int, value: Value) -> None:
        if not isinstance(value, Vector):
            raise PromQLError("subquery is only allowed on instant vector")
        self.budget.charge(len(value))
        self.held += len(value)
        append_points(self.rows, ti, value)

    def _drop_before(self, first: int) -> None:
        self.first = first
        # Dropping a prefix copies the rest: only worth it once a good part is stale.
        stale = sum(bisect_left(ts, first) for ts, _ in self.rows.values())
        if stale * 2 < self.held:
            return
        kept: Rows = {}
        for labels, (ts, vs) in self.rows.items():
            i = bisect_left(ts, first)
            if i < len(ts):
                kept[labels] = (ts[i:], vs[i:])
        self.rows = kept
        self.budget.release(stale)
        self.held -= stale

    def _drop_all(self) -> None:
        self.budget.release(self.held)
        self.held = 0
        self.rows = {}
