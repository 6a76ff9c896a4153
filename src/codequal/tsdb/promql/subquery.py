"""A subquery's evaluated steps, kept as compact per-series columns that slide forward.

A range query asks the same subquery for overlapping windows at every step: the steps it
evaluated for one window are kept (16 bytes a point, charged to the query's budget) and only
the new steps are evaluated for the next, all at once, as columns; points that fell out of
every later window are dropped and released.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable

import numpy as np

from codequal.tsdb.promql.block import Bools, Floats, Ints
from codequal.tsdb.promql.limits import Budget
from codequal.tsdb.promql.types import Labels, Matrix, Series

Rows = dict[Labels, tuple["array[int]", "array[float]"]]
# The inner expression at the given steps: each series' labels, values and presence.
Columns = Callable[[Ints], tuple[list[Labels], Floats, Bools]]


class SubqueryWindow:
    """The points a subquery has evaluated so far, at its step, by series."""

    def __init__(self, step: int, budget: Budget) -> None:
        self.step = step
        self.budget = budget
        self.first = 0  # the oldest step time held
        self.next = 0  # the next step time to evaluate; nothing held when next == first
        self.rows: Rows = {}
        self.held = 0

    def window(self, first: int, last: int, evaluate: Columns) -> Matrix:
        """The subquery's points at steps ``first .. last`` (multiples of the step);
        ``evaluate`` gives the inner expression at the steps not held yet, as columns."""
        if first < self.first or first > self.next:
            self._drop_all()
            self.first = self.next = first
        elif first > self.first:
            self._drop_before(first)
        begin = max(self.next, first)
        if begin <= last:
            times = np.arange(begin, last + 1, self.step, dtype=np.int64)
            self._append_columns(times, *evaluate(times))
            self.next = int(times[-1]) + self.step
        out = []
        for labels, (ts, vs) in self.rows.items():
            lo, hi = bisect_left(ts, first), bisect_left(ts, last + 1)
            if lo < hi:
                out.append(Series(labels, ts[lo:hi], vs[lo:hi]))
        return Matrix(out)

    def _append_columns(
        self, times: Ints, labels: list[Labels], values: Floats, present: Bools
    ) -> None:
        count = int(present.sum())
        self.budget.charge(count)
        self.held += count
        rows = self.rows
        for row_labels, row_values, mask in zip(labels, values, present, strict=True):
            if not mask.any():
                continue
            row = rows.get(row_labels)
            if row is None:
                row = rows[row_labels] = (array("q"), array("d"))
            row[0].frombytes(times[mask].tobytes())
            row[1].frombytes(row_values[mask].tobytes())

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
