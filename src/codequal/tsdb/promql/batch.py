"""Range functions over a whole range query at once, series by series.

Step-by-step evaluation re-slices every series at every step; for the common
``rate(x[5m])``-in-a-range-query case this walks each series once through all steps instead
(Prometheus's own engine loops the same way). The results are identical to the per-step
path: same windows, same function, same order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from codequal.tsdb.promql.ast_adapter import Call, MatrixSelector, Node, NumberLiteral, Paren
from codequal.tsdb.promql.context import Evaluation
from codequal.tsdb.promql.range_functions import (
    KEEPS_METRIC_NAME,
    RANGE_FUNCTIONS,
    Window,
    duration_seconds,
)
from codequal.tsdb.promql.source import MatchOp
from codequal.tsdb.promql.types import METRIC_NAME, PromQLError, Sample, Vector

# Which argument is the range vector, and which ones the scalar parameters.
MATRIX_ARG = {"quantile_over_time": 1}
PARAM_ARGS = {"quantile_over_time": (0,), "predict_linear": (1,), "holt_winters": (1, 2)}


def unwrap(node: Node) -> Node:
    while isinstance(node, Paren):
        node = node.expr
    return node


def pins_metric_name(node: Node) -> bool:
    """True when a range selector matches one metric name only, so dropping the name
    cannot make two series' labels collide (and the duplicate check can be skipped)."""
    if not isinstance(node, MatrixSelector):
        return False
    return any(m.name == METRIC_NAME and m.op is MatchOp.EQUAL for m in node.selector.matchers)


def check_unique_labels(vector: Vector) -> Vector:
    """Prometheus rejects a vector in which two samples have the same labels."""
    if len({s.labels for s in vector}) != len(vector):
        raise PromQLError("vector cannot contain metrics with the same labelset")
    return vector


def _batchable(node: Call) -> bool:
    arg = unwrap(node.args[MATRIX_ARG.get(node.func, 0)])
    return (
        node.func in RANGE_FUNCTIONS
        and node.func != "absent_over_time"
        and isinstance(arg, MatrixSelector)
        and arg.selector.at is None
        and all(isinstance(node.args[i], NumberLiteral) for i in PARAM_ARGS.get(node.func, ()))
    )


def lookup(ev: Evaluation, node: Call, t: int) -> Vector | None:
    """The call's result at ``t`` if ``t`` is a step of the range query and the call is
    batchable; None sends the caller down the per-step path."""
    if not ev.step or t < ev.start or t > ev.end or (t - ev.start) % ev.step:
        return None
    table = ev.batches.get(id(node))
    if table is None:
        table = ev.batches[id(node)] = _compute(ev, node) if _batchable(node) else {}
    return table.get(t)


def _compute(ev: Evaluation, node: Call) -> dict[int, Vector]:
    arg = unwrap(node.args[MATRIX_ARG.get(node.func, 0)])
    assert isinstance(arg, MatrixSelector)
    params = [_literal(node.args[i]) for i in PARAM_ARGS.get(node.func, ())]
    offset, range_ms = arg.selector.offset_ms, arg.range_ms
    range_s = duration_seconds(range_ms)
    windows = [
        Window(t - offset - range_ms, t - offset, range_ms, range_s, t, *params)
        for t in range(ev.start, ev.end + 1, ev.step)
    ]
    per_step = _evaluate_series(ev, node, arg, windows)
    unique = node.func in KEEPS_METRIC_NAME or pins_metric_name(arg)
    return {
        w.t: Vector(out) if unique else check_unique_labels(Vector(out))
        for w, out in zip(windows, per_step, strict=True)
    }


def _literal(node: Node) -> float:
    assert isinstance(node, NumberLiteral)
    return node.value


def _evaluate_series(
    ev: Evaluation, node: Call, arg: MatrixSelector, windows: list[Window]
) -> list[list[Sample]]:
    fn = RANGE_FUNCTIONS[node.func]
    keep_name = node.func in KEEPS_METRIC_NAME
    per_step: list[list[Sample]] = [[] for _ in windows]
    for s in ev.series(arg.selector, drop_stale=True):
        ev.budget.check()
        labels = s.labels if keep_name else s.labels.drop_name()
        ts, vs = s.timestamps, s.values
        for out, w in zip(per_step, windows, strict=True):
            lo = bisect_left(ts, w.start)
            hi = bisect_right(ts, w.end, lo)
            if lo < hi:
                value = fn(ts[lo:hi], vs[lo:hi], w)
                if value is not None:
                    out.append(Sample(labels, value, w.t))
    return per_step
