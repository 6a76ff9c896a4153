"""Evaluating function calls: range functions per series, instant functions, and the few
functions whose result depends on the shape of their argument (absent, timestamp)."""

from __future__ import annotations

import numpy as np

from codequal.tsdb.promql import batch
from codequal.tsdb.promql.ast_adapter import Call, MatrixSelector, Node, VectorSelector
from codequal.tsdb.promql.callargs import (
    MATRIX_ARG,
    PARAM_ARGS,
    check_unique_labels,
    pins_metric_name,
    unwrap,
)
from codequal.tsdb.promql.columnar import ColumnarEvaluation
from codequal.tsdb.promql.context import Evaluation
from codequal.tsdb.promql.functions import INSTANT_FUNCTIONS
from codequal.tsdb.promql.range_functions import (
    KEEPS_METRIC_NAME,
    RANGE_FUNCTIONS,
    Window,
    duration_seconds,
)
from codequal.tsdb.promql.source import MatchOp
from codequal.tsdb.promql.types import (
    METRIC_NAME,
    Labels,
    Matrix,
    PromQLError,
    Sample,
    Scalar,
    Value,
    Vector,
)


def absent_labels(node: Node) -> Labels:
    """The labels ``absent(x{job="a"})`` reports: the selector's equality matchers.

    A label matched more than once, or by another operator, is left out (Prometheus's
    historic behaviour); any other argument than a plain selector gives no labels.
    """
    if isinstance(node, MatrixSelector):
        node = node.selector
    if not isinstance(node, VectorSelector):
        return Labels()
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for m in node.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.op is MatchOp.EQUAL and m.name not in seen:
            labels[m.name] = m.value
            seen.add(m.name)
        else:
            labels.pop(m.name, None)
    return Labels.of(labels)


def _scalar(ev: Evaluation, node: Node, t: int) -> float:
    value = ev.eval(node, t)
    if not isinstance(value, Scalar):
        raise PromQLError("expected a scalar argument")
    return value.value


def _range_call(ev: Evaluation, node: Call, t: int) -> Vector:
    batched = batch.lookup(ev, node, t)
    if batched is not None:
        return batched
    columns = ColumnarEvaluation(ev, np.array([t], dtype=np.int64)).range_function_rows(node)
    if columns is not None:
        labels, values, present = columns
        vector = Vector(
            Sample(labels[i], float(values[i, 0]), t) for i in present[:, 0].nonzero()[0].tolist()
        )
        keeps = node.func in KEEPS_METRIC_NAME
        pinned = pins_metric_name(unwrap(node.args[MATRIX_ARG.get(node.func, 0)]))
        return vector if keeps or pinned else check_unique_labels(vector)
    name = node.func
    arg = node.args[MATRIX_ARG.get(name, 0)]
    params = [_scalar(ev, node.args[i], t) for i in PARAM_ARGS.get(name, ())]
    matrix = ev.eval(arg, t)
    if not isinstance(matrix, Matrix):
        raise PromQLError(f'expected type range vector in call to function "{name}"')
    end, range_ms = ev.window_ref(arg, t)
    # predict_linear's intercept is at the evaluation time, even with @ (Prometheus lists it
    # among the functions that @ does not make step-invariant).
    window = Window(end - range_ms, end, range_ms, duration_seconds(range_ms), t, *params)
    fn = RANGE_FUNCTIONS[name]
    keep_name = name in KEEPS_METRIC_NAME
    out = []
    for s in matrix:
        value = fn(s.timestamps, s.values, window)
        if value is not None:
            out.append(Sample(s.labels if keep_name else s.labels.drop_name(), value, t))
    if name == "absent_over_time":
        return Vector() if out else Vector([Sample(absent_labels(arg), 1.0, t)])
    if keep_name or pins_metric_name(unwrap(arg)):
        return Vector(out)
    return check_unique_labels(Vector(out))


def _absent(ev: Evaluation, node: Call, t: int) -> Vector:
    value = ev.eval(node.args[0], t)
    if isinstance(value, Vector) and value:
        return Vector()
    return Vector([Sample(absent_labels(node.args[0]), 1.0, t)])


def _timestamp(ev: Evaluation, node: Call, t: int) -> Vector:
    arg = unwrap(node.args[0])
    if isinstance(arg, VectorSelector):
        # Of a plain selector: the sample's own time (elsewhere samples carry the eval time).
        vector = ev.instant_selector(arg, t, sample_time=True)
    else:
        value = ev.eval(arg, t)
        if not isinstance(value, Vector):
            raise PromQLError('expected type instant vector in call to function "timestamp"')
        vector = value
    return check_unique_labels(Vector(Sample(s.labels.drop_name(), s.t / 1000, t) for s in vector))


def evaluate_call(ev: Evaluation, node: Call, t: int) -> Value:
    """Evaluate one function call at ``t``."""
    name = node.func
    if name in RANGE_FUNCTIONS:
        return _range_call(ev, node, t)
    if name == "absent":
        return _absent(ev, node, t)
    if name == "timestamp":
        return _timestamp(ev, node, t)
    fn = INSTANT_FUNCTIONS.get(name)
    if fn is None:
        raise PromQLError(f'function "{name}" is not supported by the embedded engine')
    result = fn([ev.eval(arg, t) for arg in node.args], t)
    return check_unique_labels(result) if isinstance(result, Vector) else result
