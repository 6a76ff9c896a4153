"""Range queries evaluated a whole column at a time.

Each node is evaluated once for every step of the query, into a
:class:`~codequal.tsdb.promql.block.Block` (a vector) or a float array (a scalar):
selectors by binary search over each series for all steps at once, range functions over
every window at once (:mod:`~codequal.tsdb.promql.windows`), aggregations and operators row
by row (:mod:`~codequal.tsdb.promql.colops`). A node with no columnar form (subqueries,
``absent``, ``topk``, ...) is evaluated step by step by the ordinary engine and its answers
gathered into a block, so every query works and gives the step-by-step engine's answer.
Every block is charged to the query's sample budget while it is alive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from codequal.tsdb.promql import ast_adapter as nodes
from codequal.tsdb.promql import colops, windows
from codequal.tsdb.promql.ast_adapter import (
    Call,
    MatrixSelector,
    Node,
    VectorSelector,
    value_type,
)
from codequal.tsdb.promql.block import (
    Block,
    Bools,
    Floats,
    Ints,
    scalar_block,
    to_matrix,
    unique_rows,
)
from codequal.tsdb.promql.callargs import MATRIX_ARG, PARAM_ARGS, unwrap
from codequal.tsdb.promql.colfuncs import INSTANT, InstantColumn
from codequal.tsdb.promql.context import Evaluation
from codequal.tsdb.promql.limits import TooManySamples
from codequal.tsdb.promql.range_functions import KEEPS_METRIC_NAME, RANGE_FUNCTIONS
from codequal.tsdb.promql.types import (
    STALE_NAN_BITS,
    Labels,
    Matrix,
    PromQLError,
    Scalar,
    Series,
    Vector,
)

Column = colops.Column
WINDOWS_AT_ONCE = 1 << 20  # windows (series x steps) of one range function computed together
SAMPLES_AT_ONCE = 1 << 22  # and the samples they cover, copied end to end


class ColumnarEvaluation:
    """One range query's columns, on top of its step-by-step evaluation ``ev``."""

    def __init__(self, ev: Evaluation, times: Ints | None = None) -> None:
        self.ev = ev
        self.lookback_ms = ev.lookback_ms
        if times is None:
            times = np.arange(ev.start, ev.end + 1, ev.step, dtype=np.int64)
        self.times: Ints = times

    def matrix(self, node: Node) -> Matrix:
        """The range query's result."""
        column = self.column(node)
        block = scalar_block(column) if isinstance(column, np.ndarray) else column
        return to_matrix(block, self.times)

    def column(self, node: Node) -> Column:
        """``node`` at every step: charged to the budget until the caller releases it."""
        self.ev.budget.check()
        handler = _HANDLERS.get(type(node))
        result = handler(self, node) if handler is not None else None
        if result is None:
            result = self._step_by_step(node)
        self.ev.budget.charge(_cells(result))
        return result

    def reserve(self, rows: int) -> None:
        """Refuse, before allocating it, a block of ``rows`` rows that would not fit."""
        if self.ev.budget.samples + rows * self.times.size > self.ev.budget.limits.max_samples:
            raise TooManySamples

    def release(self, *columns: Column) -> None:
        self.ev.budget.release(sum(_cells(c) for c in columns))

    def operands(self, *nodes: Node) -> list[Column]:
        return [self.column(n) for n in nodes]

    # -- step by step, for what has no columnar form -----------------------------------------

    def _step_by_step(self, node: Node) -> Column:
        rows: dict[Labels, int] = {}
        steps = self.times.size
        scalar = np.zeros(steps)
        cells: list[tuple[int, int, float]] = []
        for k, t in enumerate(self.times.tolist()):
            value = self.ev.eval(node, t)
            if isinstance(value, Scalar):
                scalar[k] = value.value
                continue
            if not isinstance(value, Vector):
                raise PromQLError("expected a scalar or an instant vector in a range query")
            for s in value:
                cells.append((rows.setdefault(s.labels, len(rows)), k, s.value))
            self.ev.budget.check()
        if value_type(node) == "scalar":
            return scalar
        self.reserve(len(rows))
        values = np.zeros((len(rows), steps))
        present = np.zeros((len(rows), steps), dtype=bool)
        for row, k, v in cells:
            values[row, k], present[row, k] = v, True
        return Block(list(rows), values, present)

    # -- selectors and range functions ----------------------------------------------------------

    def refs(self, selector: VectorSelector) -> Ints:
        """The time each step reads the selector at (its @ and offset applied)."""
        if selector.at is None:
            return self.times - selector.offset_ms
        at = self.ev.resolve(selector.at, 0)
        return np.full(self.times.size, at - selector.offset_ms, dtype=np.int64)

    def selector(self, node: VectorSelector) -> Block:
        refs = self.refs(node)
        oldest = refs - self.lookback_ms
        series = self.ev.series(node, drop_stale=False)
        self.reserve(len(series))
        values = np.zeros((len(series), refs.size))
        present = np.zeros((len(series), refs.size), dtype=bool)
        for row, s in enumerate(series):
            ts = np.asarray(s.timestamps, dtype=np.int64)
            vs = np.asarray(s.values, dtype=np.float64)
            idx = np.searchsorted(ts, refs, side="right") - 1
            ok = idx >= 0
            idx = np.maximum(idx, 0)
            found = vs[idx]
            ok &= (ts[idx] >= oldest) & (found.view(np.uint64) != STALE_NAN_BITS)
            values[row], present[row] = found, ok
        return Block([s.labels for s in series], values, present)

    def range_call(self, node: Call) -> Block | None:
        rows = self.range_function_rows(node)
        return None if rows is None else unique_rows(Block(*rows))

    def range_function_rows(self, node: Call) -> tuple[list[Labels], Floats, Bools] | None:
        """A range function over a range selector: one row per selected series, in the
        selector's order (None for what has no columnar form)."""
        name = node.func
        arg = unwrap(node.args[MATRIX_ARG.get(name, 0)])
        if not isinstance(arg, MatrixSelector) or name == "absent_over_time":
            return None
        params = self._params(node)
        if params is None:
            return None
        ends = self.refs(arg.selector)
        steps = self.times.size
        labels: list[Labels] = []
        values: list[Floats] = []
        present: list[Bools] = []
        keep = name in KEEPS_METRIC_NAME
        for run in self.ev.series_runs(arg.selector):
            self.reserve(len(labels) + len(run))
            # A few series at a time: the windows' bounds take ~50 bytes per series and
            # step, and their samples are copied end to end.
            for part in _parts(run, steps):
                flat = self._windows(part, ends, arg.range_ms, params)
                done, found = windows.evaluate(name, flat)
                values.append(done.reshape(len(part), steps))
                present.append(found.reshape(len(part), steps))
                self.ev.budget.check()
            labels += [s.labels if keep else s.labels.drop_name() for s in run]
        if not labels:
            return [], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool)
        return labels, np.concatenate(values), np.concatenate(present)

    def _windows(
        self, series: list[Series], ends: Ints, range_ms: int, params: tuple[Floats, ...]
    ) -> windows.Windows:
        """The windows ``(ends - range, ends]`` of each series, over their samples laid end
        to end."""
        starts = ends - range_ms
        stamps = [np.asarray(s.timestamps, dtype=np.int64) for s in series]
        lows, highs, offset = [], [], 0
        for ts in stamps:
            lows.append(np.searchsorted(ts, starts, side="left") + offset)
            highs.append(np.searchsorted(ts, ends, side="right") + offset)
            offset += ts.size
        rows = len(series)
        return windows.Windows(
            ts=_concat(stamps, np.int64),
            vs=_concat([np.asarray(s.values, dtype=np.float64) for s in series], np.float64),
            lo=_concat(lows, np.int64),
            hi=_concat(highs, np.int64),
            starts=np.tile(starts, rows),
            ends=np.tile(ends, rows),
            evals=np.tile(self.times, rows),
            range_ms=range_ms,
            params=tuple(np.tile(p, rows) for p in params),
        )

    def _params(self, node: Call) -> tuple[Floats, ...] | None:
        """The call's scalar parameters at each step (None unless they are scalars)."""
        params = []
        for i in PARAM_ARGS.get(node.func, ()):
            if value_type(node.args[i]) != "scalar":
                return None
            column = self.column(node.args[i])
            self.release(column)
            if not isinstance(column, np.ndarray):
                return None
            params.append(column)
        return tuple(params)


def _parts(series: list[Series], steps: int) -> Iterator[list[Series]]:
    """Consecutive runs of series with at most WINDOWS_AT_ONCE windows and about
    SAMPLES_AT_ONCE samples each."""
    part: list[Series] = []
    samples = 0
    for s in series:
        if part and (
            (len(part) + 1) * steps > WINDOWS_AT_ONCE or samples + len(s.values) > SAMPLES_AT_ONCE
        ):
            yield part
            part, samples = [], 0
        part.append(s)
        samples += len(s.values)
    if part:
        yield part


def _concat(arrays: list[Any], dtype: type) -> Any:
    return np.concatenate(arrays).astype(dtype) if arrays else np.empty(0, dtype=dtype)


def _cells(column: Column) -> int:
    return column.cells if isinstance(column, Block) else int(column.size)


def _number(col: ColumnarEvaluation, node: nodes.NumberLiteral) -> Column:
    return np.full(col.times.size, node.value)


def _paren(col: ColumnarEvaluation, node: nodes.Paren) -> Column:
    return col.column(node.expr)


def _negation(col: ColumnarEvaluation, node: nodes.Negation) -> Column:
    (inner,) = col.operands(node.expr)
    col.release(inner)
    if isinstance(inner, np.ndarray):
        return -inner
    labels = [lb.drop_name() for lb in inner.labels]
    return unique_rows(Block(labels, -inner.values, inner.present))


def _aggregate(col: ColumnarEvaluation, node: nodes.Aggregate) -> Column | None:
    if node.op not in colops.SIMPLE_AGGREGATIONS or node.param is not None:
        return None
    (inner,) = col.operands(node.expr)
    col.release(inner)
    if not isinstance(inner, Block):
        return None
    return colops.aggregate(node.op, inner, node.grouping, node.without)


def _binary(col: ColumnarEvaluation, node: nodes.Binary) -> Column | None:
    lhs, rhs = col.operands(node.lhs, node.rhs)
    col.release(lhs, rhs)
    if isinstance(lhs, np.ndarray) and isinstance(rhs, np.ndarray):
        return colops.scalar_scalar(node.op, lhs, rhs)
    if isinstance(lhs, Block) and isinstance(rhs, Block):
        if node.card == "many-to-many":
            return colops.set_operation(node, lhs, rhs)
        return colops.vector_vector(node, lhs, rhs)
    if isinstance(lhs, Block):
        assert isinstance(rhs, np.ndarray)
        return colops.vector_scalar(node, lhs, rhs, swap=False)
    assert isinstance(rhs, Block)
    return colops.vector_scalar(node, rhs, lhs, swap=True)


def _call(col: ColumnarEvaluation, node: Call) -> Column | None:
    if node.func in RANGE_FUNCTIONS:
        return col.range_call(node)
    fn: InstantColumn | None = INSTANT.get(node.func)
    return None if fn is None else fn(col, node)


_HANDLERS: dict[type, Callable[[ColumnarEvaluation, Any], Column | None]] = {
    nodes.NumberLiteral: _number,
    nodes.Paren: _paren,
    VectorSelector: ColumnarEvaluation.selector,
    nodes.Negation: _negation,
    nodes.Aggregate: _aggregate,
    nodes.Binary: _binary,
    Call: _call,
}
