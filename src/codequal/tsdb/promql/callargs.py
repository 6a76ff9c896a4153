"""Facts about function calls shared by the step-by-step and the columnar evaluation: where
a call's range vector and scalar parameters are, and the duplicate-labels rule."""

from __future__ import annotations

from codequal.tsdb.promql.ast_adapter import MatrixSelector, Node, Paren
from codequal.tsdb.promql.source import MatchOp
from codequal.tsdb.promql.types import METRIC_NAME, PromQLError, Vector

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
