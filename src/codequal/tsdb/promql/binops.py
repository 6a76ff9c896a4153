"""Binary operators: arithmetic, comparisons, set operators and vector matching.

Ports Prometheus 2.x's ``VectorBinop``, ``VectorscalarBinop``, ``VectorAnd/Or/Unless`` and
``resultMetric``, including its error messages and where it drops the metric name
(arithmetic always; comparisons only with ``bool``; set operators never).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence

from codequal.tsdb.promql import gomath
from codequal.tsdb.promql.ast_adapter import Binary
from codequal.tsdb.promql.types import METRIC_NAME, Labels, PromQLError, Sample, Vector

ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": gomath.div,
    "%": gomath.mod,
    "^": gomath.pow_,
    "atan2": math.atan2,
}
# The operators whose result drops the metric name (2.42's shouldDropMetricName: not atan2).
DROPS_NAME = frozenset({"+", "-", "*", "/", "%", "^"})
COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


def scalar_binop(op: str, lhs: float, rhs: float) -> float:
    """Scalar-scalar: comparisons yield 1 or 0 (the parser requires ``bool`` there)."""
    if op in COMPARISON:
        return 1.0 if COMPARISON[op](lhs, rhs) else 0.0
    return ARITHMETIC[op](lhs, rhs)


def _elem(op: str, lhs: float, rhs: float) -> tuple[float, bool]:
    """Prometheus's ``vectorElemBinop``: (value, keep); comparisons keep the lhs value."""
    compare = COMPARISON.get(op)
    if compare is not None:
        return lhs, compare(lhs, rhs)
    return ARITHMETIC[op](lhs, rhs), True


def vector_scalar(
    op: str, vector: Sequence[Sample], scalar: float, *, swap: bool, return_bool: bool, t: int
) -> Vector:
    """``vector op scalar`` (or ``scalar op vector`` when ``swap``)."""
    drop_name = op in DROPS_NAME or return_bool
    out = []
    for s in vector:
        lv, rv = (scalar, s.value) if swap else (s.value, scalar)
        value, keep = _elem(op, lv, rv)
        if op in COMPARISON and swap:
            value = rv  # a filter always returns the vector's own value
        if return_bool:
            value, keep = (1.0 if keep else 0.0), True
        if keep:
            out.append(Sample(s.labels.drop_name() if drop_name else s.labels, value, t))
    return Vector(out)


def signature(node: Binary) -> Callable[[Labels], tuple[object, ...]]:
    """The match key: the ``on`` labels, or all labels but the ignored ones and the name."""
    if node.on:
        names = node.matching
        return lambda labels: tuple(labels.get(n) for n in names)
    dropped = frozenset((*node.matching, METRIC_NAME))
    return lambda labels: tuple(p for p in labels if p[0] not in dropped)


def _match_labels(labels: Labels, node: Binary) -> Labels:
    if node.on:
        return labels.keep(node.matching)
    return labels.without((*node.matching, METRIC_NAME))


def result_labels(lhs: Labels, rhs: Labels, node: Binary) -> Labels:
    """The labels of a vector-vector result from the "many" side ``lhs`` and "one" side ``rhs``."""
    labels = lhs.drop_name() if node.op in DROPS_NAME or node.return_bool else lhs
    if node.card == "one-to-one":
        labels = labels.keep(node.matching) if node.on else labels.without(node.matching)
    for name in node.include:
        # group_left / group_right labels come from the "one" side.
        labels = labels.set(name, rhs.get(name))
    return labels


def _index_one_side(one: Sequence[Sample], node: Binary) -> dict[tuple[object, ...], Sample]:
    sig = signature(node)
    index: dict[tuple[object, ...], Sample] = {}
    side = "left" if node.card == "one-to-many" else "right"
    for s in one:
        key = sig(s.labels)
        if (dup := index.get(key)) is not None:
            raise PromQLError(
                f"found duplicate series for the match group {_match_labels(s.labels, node)} "
                f"on the {side} hand-side of the operation: [{s.labels}, {dup.labels}];"
                "many-to-many matching not allowed: matching labels must be unique on one side"
            )
        index[key] = s
    return index


def vector_vector(node: Binary, lhs: Sequence[Sample], rhs: Sequence[Sample], t: int) -> Vector:
    """One-to-one and many-to-one / one-to-many matching (``group_left`` / ``group_right``)."""
    swapped = node.card == "one-to-many"
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    index = _index_one_side(one, node)
    sig = signature(node)
    matched: dict[tuple[object, ...], set[Labels]] = {}
    out = []
    for ms in many:
        key = sig(ms.labels)
        os = index.get(key)
        if os is None:
            continue
        fl, fr = (os.value, ms.value) if swapped else (ms.value, os.value)
        value, keep = _elem(node.op, fl, fr)
        if node.return_bool:
            value = 1.0 if keep else 0.0
        elif not keep:
            continue
        labels = result_labels(ms.labels, os.labels, node)
        _check_unique(matched, key, labels, node)
        out.append(Sample(labels, value, t))
    return Vector(out)


def _check_unique(
    matched: dict[tuple[object, ...], set[Labels]],
    key: tuple[object, ...],
    labels: Labels,
    node: Binary,
) -> None:
    seen = matched.get(key)
    if node.card == "one-to-one":
        if seen is not None:
            raise PromQLError(
                "multiple matches for labels: many-to-one matching must be explicit "
                "(group_left/group_right)"
            )
        matched[key] = set()
        return
    if seen is None:
        seen = matched[key] = set()
    elif labels in seen:
        raise PromQLError("multiple matches for labels: grouping labels must ensure unique matches")
    seen.add(labels)


def set_operation(node: Binary, lhs: Sequence[Sample], rhs: Sequence[Sample]) -> Vector:
    """``and``, ``or``, ``unless``: filter by match key; samples keep all their labels."""
    sig = signature(node)
    if node.op == "and":
        if not lhs or not rhs:
            return Vector()
        right = {sig(s.labels) for s in rhs}
        return Vector(s for s in lhs if sig(s.labels) in right)
    if node.op == "or":
        if not lhs or not rhs:
            return Vector((*lhs, *rhs))
        left = {sig(s.labels) for s in lhs}
        return Vector((*lhs, *(s for s in rhs if sig(s.labels) not in left)))
    if not lhs or not rhs:
        return Vector(lhs)
    right = {sig(s.labels) for s in rhs}
    return Vector(s for s in lhs if sig(s.labels) not in right)
