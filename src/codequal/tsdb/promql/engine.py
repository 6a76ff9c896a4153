"""The PromQL engine: instant and range queries over a :class:`SeriesSource`.

Evaluation is step by step: a range query evaluates the expression at every step and
stitches the vectors into series, as Prometheus's ``rangeEval`` does. Each selector reads
its series from the source once per query (the window every step needs), and subquery steps
are memoised, so a range query does not redo the work of overlapping windows.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from codequal.tsdb.promql import binops, types
from codequal.tsdb.promql.aggregations import aggregate
from codequal.tsdb.promql.ast_adapter import (
    Aggregate,
    At,
    Binary,
    Call,
    MatrixSelector,
    Negation,
    Node,
    NumberLiteral,
    Paren,
    StringLiteral,
    Subquery,
    VectorSelector,
    parse,
    value_type,
)
from codequal.tsdb.promql.block import Block, Bools, Floats, Ints
from codequal.tsdb.promql.callargs import check_unique_labels
from codequal.tsdb.promql.calls import evaluate_call
from codequal.tsdb.promql.columnar import ColumnarEvaluation
from codequal.tsdb.promql.limits import Budget, Cancellation, QueryLimits, resolution_error
from codequal.tsdb.promql.source import BatchedSource, BoundedSource, SeriesSource
from codequal.tsdb.promql.subquery import SubqueryWindow
from codequal.tsdb.promql.types import (
    Labels,
    PromQLError,
    Scalar,
    Series,
    Vector,
)

DEFAULT_LOOKBACK_MS = 5 * 60 * 1000
DEFAULT_STEP_MS = 60 * 1000

_parse_cached = lru_cache(maxsize=1024)(parse)


class Engine:
    """Evaluates PromQL with Prometheus 2.x semantics; times are integer milliseconds.

    ``lookback_delta_ms``: how far back an instant selector looks for a sample (5 min).
    ``default_step_ms``: the step of a subquery written without one (``x[1h:]``); Prometheus
    uses its global evaluation interval (1 min by default).
    ``limits``: each query's timeout, samples and points (:class:`QueryLimits`' defaults);
    ``clock``: monotonic seconds, for the timeout.
    """

    def __init__(
        self,
        source: SeriesSource,
        lookback_delta_ms: int = DEFAULT_LOOKBACK_MS,
        default_step_ms: int = DEFAULT_STEP_MS,
        limits: QueryLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lookback_delta_ms <= 0 or default_step_ms <= 0:
            raise ValueError("lookback_delta_ms and default_step_ms must be positive")
        self.source = source
        self.lookback_delta_ms = lookback_delta_ms
        self.default_step_ms = default_step_ms
        self.limits = QueryLimits() if limits is None else limits
        self.clock = clock  # what query deadlines are measured on (seconds)

    def instant(self, query: str, t: int, cancel: Cancellation | None = None) -> types.Value:
        """Evaluate ``query`` at ``t`` (ms): a Vector, Scalar, types.String or types.Matrix.

        ``cancel``: set it (from any thread) to stop the query at its next check.
        """
        node = _parse_cached(query)
        return self._evaluation(node, t, t, 0, cancel).eval(node, t)

    def range(
        self, query: str, start: int, end: int, step: int, cancel: Cancellation | None = None
    ) -> types.Matrix:
        """Evaluate ``query`` at ``start``, ``start + step``, ... ``<= end`` (ms)."""
        if step <= 0:
            raise PromQLError("zero or negative query resolution step widths are not accepted")
        if end < start:
            raise PromQLError("end timestamp must not be before start time")
        if (end - start) // step + 1 > self.limits.max_points:
            raise resolution_error((end - start) // step + 1, "the range query")
        node = _parse_cached(query)
        kind = value_type(node)
        if kind not in ("scalar", "vector"):
            kind_name = "range vector" if kind == "matrix" else kind
            raise PromQLError(
                f'invalid expression type "{kind_name}" for range query, '
                "must be Scalar or instant Vector"
            )
        evaluation = self._evaluation(node, start, end, step, cancel)
        result = ColumnarEvaluation(evaluation).matrix(node)
        evaluation.budget.charge(sum(len(s.timestamps) for s in result))
        return result

    def _evaluation(
        self, node: Node, start: int, end: int, step: int, cancel: Cancellation | None
    ) -> _Evaluation:
        evaluation = _Evaluation(self, start, end, step, Budget(self.limits, cancel, self.clock))
        evaluation.plan(node, start, end)
        return evaluation


@dataclass
class _Evaluation:
    """One query's state: the selectors' windows and fetched series, the subquery memo."""

    engine: Engine
    start: int
    end: int
    step: int  # 0 for an instant query
    budget: Budget
    windows: dict[int, list[int]] = field(default_factory=dict)
    selected: dict[int, list[Series]] = field(default_factory=dict)
    subqueries: dict[int, SubqueryWindow] = field(default_factory=dict)
    batches: dict[int, dict[int, Vector]] = field(default_factory=dict)
    group_keys: dict[int, dict[Labels, tuple[object, Labels]]] = field(default_factory=dict)

    @property
    def lookback_ms(self) -> int:
        return self.engine.lookback_delta_ms

    # -- planning: which time window each selector needs ---------------------------------

    def resolve(self, at: At | None, t: int) -> int:
        if at is None:
            return t
        if at == "start":
            return self.start
        if at == "end":
            return self.end
        return at

    def plan(self, node: Node, lo: int, hi: int) -> None:
        """Record, for each selector, the widest [mint, maxt] any evaluation will read."""
        if isinstance(node, VectorSelector | MatrixSelector | Subquery):
            selector = node.selector if isinstance(node, MatrixSelector) else node
            first = self.resolve(selector.at, lo) - selector.offset_ms
            last = self.resolve(selector.at, hi) - selector.offset_ms
            if isinstance(node, Subquery):
                steps = node.range_ms // (node.step_ms or self.engine.default_step_ms) + 1
                if steps > self.budget.limits.max_points:
                    raise resolution_error(steps, "a subquery")
                self.plan(node.expr, first - node.range_ms, last)
                return
            assert isinstance(selector, VectorSelector)
            reach = (
                node.range_ms if isinstance(node, MatrixSelector) else self.engine.lookback_delta_ms
            )
            window = self.windows.setdefault(id(selector), [first - reach, last])
            window[0], window[1] = min(window[0], first - reach), max(window[1], last)
            return
        for child in _children(node):
            self.plan(child, lo, hi)

    def series(self, selector: VectorSelector, drop_stale: bool) -> list[Series]:
        key = id(selector) * 2 + drop_stale
        cached = self.selected.get(key)
        if cached is None:
            cached = self._fetch(selector)
            if drop_stale:
                cached = [_without_stale(s) for s in cached]
            self.selected[key] = cached
        return cached

    def series_runs(self, selector: VectorSelector) -> Iterator[list[Series]]:
        """The selector's series without stale markers, in label order, a run at a time: a
        source that can read runs (the store) holds one run in memory, charged to the budget
        while it is used; any other source gives them all at once."""
        source = self.engine.source
        if id(selector) * 2 + 1 in self.selected or not isinstance(source, BatchedSource):
            yield self.series(selector, drop_stale=True)
            return
        mint, maxt = self.windows[id(selector)]
        self.budget.check()
        most = max(1, self.budget.remaining())
        for run in source.select_batches(selector.matchers, mint, maxt, most):
            held = sum(len(s.timestamps) for s in run)
            self.budget.charge(held)
            yield [_without_stale(s) for s in run]
            self.budget.release(held)

    def _fetch(self, selector: VectorSelector) -> list[Series]:
        """The selector's series, charged to the budget (by a bounded source, before it
        decodes them)."""
        mint, maxt = self.windows[id(selector)]
        source = self.engine.source
        self.budget.check()
        if isinstance(source, BoundedSource):
            fetched = source.select_bounded(selector.matchers, mint, maxt, self.budget.remaining())
        else:
            fetched = list(source.select(selector.matchers, mint, maxt))
        self.budget.charge(sum(len(s.timestamps) for s in fetched))
        return sorted(fetched, key=lambda s: s.labels)

    # -- evaluation ----------------------------------------------------------------------

    def eval(self, node: Node, t: int) -> types.Value:
        handler = _HANDLERS.get(type(node))
        if handler is None:
            raise PromQLError(f"unsupported expression {node!r}")
        return handler(self, node, t)

    def instant_selector(self, node: VectorSelector, t: int, sample_time: bool = False) -> Vector:
        """Latest sample at or before ``t`` within the lookback (stale marker: absent)."""
        ref = self.resolve(node.at, t) - node.offset_ms
        oldest = ref - self.engine.lookback_delta_ms
        out = []
        for s in self.series(node, drop_stale=False):
            i = bisect_right(s.timestamps, ref) - 1
            # Prometheus 2.x includes a sample exactly lookback_delta old.
            if i < 0 or s.timestamps[i] < oldest:
                continue
            value = s.values[i]
            if types.is_stale(value):
                continue
            out.append(types.Sample(s.labels, value, s.timestamps[i] if sample_time else t))
        return Vector(out)

    def range_selector(self, node: MatrixSelector, t: int) -> types.Matrix:
        """Samples in the closed window [ref - range, ref], as Prometheus 2.x selects them."""
        sel = node.selector
        ref = self.resolve(sel.at, t) - sel.offset_ms
        mint = ref - node.range_ms
        out = []
        for s in self.series(sel, drop_stale=True):
            lo = bisect_left(s.timestamps, mint)
            hi = bisect_right(s.timestamps, ref)
            if lo < hi:
                out.append(Series(s.labels, s.timestamps[lo:hi], s.values[lo:hi]))
        return types.Matrix(out)

    def subquery(self, node: Subquery, t: int) -> types.Matrix:
        """Evaluate the inner expression at every multiple of the step in the window."""
        ref = self.resolve(node.at, t) - node.offset_ms
        step = node.step_ms or self.engine.default_step_ms
        # Steps are aligned to multiples of the step (from the epoch), not to the query time.
        first = -(-(ref - node.range_ms) // step) * step
        window = self.subqueries.get(id(node))
        if window is None:
            window = self.subqueries[id(node)] = SubqueryWindow(step, self.budget)
        return window.window(first, ref, lambda times: self._columns(node.expr, times))

    def _columns(self, node: Node, times: Ints) -> tuple[list[Labels], Floats, Bools]:
        """``node`` at each of ``times``, as columns (a subquery's inner expression)."""
        columns = ColumnarEvaluation(self, times)
        column = columns.column(node)
        columns.release(column)
        if not isinstance(column, Block):
            raise PromQLError("subquery is only allowed on instant vector")
        return column.labels, column.values, column.present

    def window_ref(self, node: Node, t: int) -> tuple[int, int]:
        """The (end, range) of a range-vector argument: end is its time minus its offset."""
        while isinstance(node, Paren):
            node = node.expr
        if isinstance(node, MatrixSelector):
            sel = node.selector
            return self.resolve(sel.at, t) - sel.offset_ms, node.range_ms
        if isinstance(node, Subquery):
            return self.resolve(node.at, t) - node.offset_ms, node.range_ms
        raise PromQLError("expected a range vector (a selector with [range] or a subquery)")


def _without_stale(s: Series) -> Series:
    # A C-speed scan for the usual case of no NaN at all, before the exact check.
    if not np.isnan(np.asarray(s.values, dtype=np.float64)).any():
        return s
    if not any(map(types.is_stale, s.values)):
        return s
    keep = [i for i, v in enumerate(s.values) if not types.is_stale(v)]
    ts, vs = s.timestamps, s.values
    return Series(s.labels, [ts[i] for i in keep], [vs[i] for i in keep])


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Paren | Negation):
        return (node.expr,)
    if isinstance(node, Binary):
        return (node.lhs, node.rhs)
    if isinstance(node, Aggregate):
        return (node.expr,) if node.param is None else (node.param, node.expr)
    if isinstance(node, Call):
        return node.args
    return ()


def _negate(ev: _Evaluation, node: Negation, t: int) -> types.Value:
    value = ev.eval(node.expr, t)
    if isinstance(value, Scalar):
        return Scalar(-value.value, t)
    if not isinstance(value, Vector):
        raise PromQLError("unary minus needs a scalar or an instant vector")
    return check_unique_labels(
        Vector(types.Sample(s.labels.drop_name(), -s.value, t) for s in value)
    )


def _binary(ev: _Evaluation, node: Binary, t: int) -> types.Value:
    lhs, rhs = ev.eval(node.lhs, t), ev.eval(node.rhs, t)
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        return Scalar(binops.scalar_binop(node.op, lhs.value, rhs.value), t)
    if isinstance(lhs, Vector) and isinstance(rhs, Vector):
        if node.card == "many-to-many":
            return binops.set_operation(node, lhs, rhs)
        return check_unique_labels(binops.vector_vector(node, lhs, rhs, t))
    if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
        result = binops.vector_scalar(
            node.op, lhs, rhs.value, swap=False, return_bool=node.return_bool, t=t
        )
    elif isinstance(lhs, Scalar) and isinstance(rhs, Vector):
        result = binops.vector_scalar(
            node.op, rhs, lhs.value, swap=True, return_bool=node.return_bool, t=t
        )
    else:
        raise PromQLError("binary expression must contain only scalar and instant vector types")
    return check_unique_labels(result)


def _aggregate(ev: _Evaluation, node: Aggregate, t: int) -> types.Value:
    vector = ev.eval(node.expr, t)
    if not isinstance(vector, Vector):
        raise PromQLError("expected type instant vector in aggregation expression")
    param: float | str | None = None
    if node.param is not None:
        value = ev.eval(node.param, t)
        if not isinstance(value, Scalar | types.String):
            raise PromQLError("aggregation parameter must be a scalar or a string")
        param = value.value
    return aggregate(
        node.op,
        vector,
        grouping=node.grouping,
        without=node.without,
        param=param,
        t=t,
        cache=ev.group_keys.setdefault(id(node), {}),
    )


_HANDLERS: dict[type, Callable[[_Evaluation, Any, int], types.Value]] = {
    NumberLiteral: lambda ev, node, t: Scalar(node.value, t),
    StringLiteral: lambda ev, node, t: types.String(node.value, t),
    Paren: lambda ev, node, t: ev.eval(node.expr, t),
    VectorSelector: _Evaluation.instant_selector,
    MatrixSelector: _Evaluation.range_selector,
    Subquery: _Evaluation.subquery,
    Negation: _negate,
    Binary: _binary,
    Aggregate: _aggregate,
    Call: evaluate_call,
}
