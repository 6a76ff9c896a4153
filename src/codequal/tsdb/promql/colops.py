"""Aggregations and binary operators over :class:`~codequal.tsdb.promql.block.Block` columns.

The same rules as :mod:`~codequal.tsdb.promql.aggregations` and
:mod:`~codequal.tsdb.promql.binops`, applied to every step at once: rows are combined in
the order the step-by-step engine meets the samples, with the same floating-point operations,
so results are identical. What has no columnar form here returns None and is evaluated step
by step instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from codequal.tsdb.promql import gomath
from codequal.tsdb.promql.aggregations import _group_keyer, _group_labels
from codequal.tsdb.promql.ast_adapter import Binary
from codequal.tsdb.promql.binops import (
    COMPARISON,
    DROPS_NAME,
    result_labels,
    scalar_binop,
    signature,
)
from codequal.tsdb.promql.block import Block, Bools, Floats, unique_rows
from codequal.tsdb.promql.types import Labels

Column = Block | Floats  # a vector, or a scalar (one value per step)


def _elementwise(fn: Callable[[float, float], float]) -> Callable[[Floats, Floats], Floats]:
    ufunc = np.frompyfunc(fn, 2, 1)
    return lambda x, y: np.asarray(ufunc(x, y), dtype=np.float64)


# Exactly the scalar operators' results: IEEE operations where numpy computes the same,
# the ported Go functions elementwise where it does not (``^``, ``atan2``).
ARITHMETIC: dict[str, Callable[[Floats, Floats], Floats]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,
    "^": _elementwise(gomath.pow_),
    "atan2": _elementwise(math.atan2),
}
_COMPARE: dict[str, Callable[[Floats, Floats], Bools]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}
SIMPLE_AGGREGATIONS = frozenset({"sum", "avg", "count", "min", "max", "group", "stdvar", "stddev"})


def _errstate() -> np.errstate:
    return np.errstate(invalid="ignore", divide="ignore", over="ignore")


# -- aggregations -----------------------------------------------------------------------------


def aggregate(op: str, block: Block, grouping: tuple[str, ...], without: bool) -> Block:
    """``op by/without (grouping) (block)`` for the operators in SIMPLE_AGGREGATIONS."""
    key_of = _group_keyer(grouping, without)
    groups: dict[object, int] = {}
    labels: list[Labels] = []
    owner = []
    for row_labels in block.labels:
        key = key_of(row_labels)
        if key not in groups:
            groups[key] = len(labels)
            labels.append(_group_labels(row_labels, grouping, without))
        owner.append(groups[key])
    state = _Accumulator(op, len(labels), block.values.shape[1])
    with _errstate():
        for g, values, present in zip(owner, block.values, block.present, strict=True):
            state.add(g, values, present)
    return Block(labels, state.result(), state.seen)


class _Accumulator:
    """Per group and step: the running value, the mean and count where the operator needs
    them, and whether a sample was seen, updated in input order like Prometheus's loop."""

    def __init__(self, op: str, groups: int, steps: int) -> None:
        self.op = op
        self.value = np.zeros((groups, steps))
        self.mean = np.zeros((groups, steps))
        self.count = np.zeros((groups, steps))
        self.seen = np.zeros((groups, steps), dtype=bool)

    def add(self, g: int, v: Floats, present: Bools) -> None:
        first = present & ~self.seen[g]
        later = present & self.seen[g]
        self.count[g] += present
        value = self.value[g]
        op = self.op
        if op == "sum":
            value[:] = np.where(first, v, np.where(later, value + v, value))
        elif op in ("min", "max"):
            better = value > v if op == "min" else value < v
            take = first | (later & (better | np.isnan(value)))
            value[:] = np.where(take, v, value)
        elif op == "avg":
            self._mean(g, v, first, later)
        elif op in ("stdvar", "stddev"):
            self._variance(g, v, first, later)
        self.seen[g] |= present

    def _mean(self, g: int, v: Floats, first: Bools, later: Bools) -> None:
        mean, count = self.mean[g], self.count[g]
        same_inf = np.isinf(v) & ((mean > 0) == (v > 0))
        stays = np.isinf(mean) & (same_inf | np.isfinite(v))
        updated = mean + (v / count - mean / count)
        mean[:] = np.where(first, v, np.where(later & ~stays, updated, mean))

    def _variance(self, g: int, v: Floats, first: Bools, later: Bools) -> None:
        mean, aux, count = self.mean[g], self.value[g], self.count[g]
        d = v - mean
        new_mean = mean + d / count
        new_aux = aux + d * (v - new_mean)
        mean[:] = np.where(first, v, np.where(later, new_mean, mean))
        aux[:] = np.where(first, 0.0, np.where(later, new_aux, aux))

    def result(self) -> Floats:
        op = self.op
        if op == "count":
            return self.count
        if op == "group":
            return np.ones_like(self.value)
        if op == "avg":
            return self.mean
        if op == "stdvar":
            return self.value / self.count
        if op == "stddev":
            return np.sqrt(self.value / self.count)
        return self.value


# -- binary operators --------------------------------------------------------------------------


def scalar_scalar(op: str, lhs: Floats, rhs: Floats) -> Floats:
    return _elementwise(lambda x, y: scalar_binop(op, x, y))(lhs, rhs)


def vector_scalar(node: Binary, vector: Block, scalar: Floats, swap: bool) -> Block:
    """``vector op scalar`` (``scalar op vector`` when ``swap``), as binops.vector_scalar."""
    lhs, rhs = (scalar, vector.values) if swap else (vector.values, scalar)
    present = vector.present
    with _errstate():
        if node.op in COMPARISON:
            keep = _COMPARE[node.op](lhs, rhs)
            values = vector.values
            if node.return_bool:
                values, keep = keep.astype(np.float64), np.ones_like(keep)
            present = present & keep
        else:
            values = np.broadcast_to(ARITHMETIC[node.op](lhs, rhs), vector.values.shape)
    drop = node.op in DROPS_NAME or node.return_bool
    labels = [lb.drop_name() for lb in vector.labels] if drop else vector.labels
    return unique_rows(Block(labels, np.array(values, dtype=np.float64), present))


def vector_vector(node: Binary, lhs: Block, rhs: Block) -> Block | None:
    """One-to-one and group_left / group_right matching; None when a side repeats a match
    signature (the step-by-step engine then decides per step, errors included)."""
    swapped = node.card == "one-to-many"
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    sig = signature(node)
    one_rows: dict[tuple[object, ...], int] = {}
    for i, labels in enumerate(one.labels):
        if one_rows.setdefault(sig(labels), i) != i:
            return None
    many_sigs = [sig(labels) for labels in many.labels]
    matched = [one_rows.get(s) for s in many_sigs]
    matched_sigs = [s for s, m in zip(many_sigs, matched, strict=True) if m is not None]
    if node.card == "one-to-one" and _repeats(matched_sigs):
        return None
    rows = [(i, j) for i, j in enumerate(matched) if j is not None]
    if not rows:
        return Block.empty(lhs.values.shape[1])
    mi = np.array([i for i, _ in rows])
    oi = np.array([j for _, j in rows])
    mv, ov = many.values[mi], one.values[oi]
    present = many.present[mi] & one.present[oi]
    left, right = (ov, mv) if swapped else (mv, ov)
    with _errstate():
        if node.op in COMPARISON:
            keep = _COMPARE[node.op](left, right)
            values = keep.astype(np.float64) if node.return_bool else left
            present = present if node.return_bool else present & keep
        else:
            values = ARITHMETIC[node.op](left, right)
    out = [result_labels(many.labels[i], one.labels[j], node) for i, j in rows]
    if len(set(out)) != len(out) and node.card != "one-to-one":
        return None  # grouping labels repeat: the per-step check words the error
    return unique_rows(Block(out, values, present))


def _repeats(items: list[tuple[object, ...]]) -> bool:
    return len(set(items)) != len(items)


def set_operation(node: Binary, lhs: Block, rhs: Block) -> Block:
    """``and``, ``or``, ``unless`` at every step: filter by match signature."""
    sig = signature(node)
    steps = lhs.values.shape[1]
    rhs_any: dict[tuple[object, ...], Bools] = {}
    for labels, present in zip(rhs.labels, rhs.present, strict=True):
        key = sig(labels)
        rhs_any[key] = rhs_any.get(key, np.zeros(steps, dtype=bool)) | present
    none = np.zeros(steps, dtype=bool)
    if node.op in ("and", "unless"):
        found = np.array([rhs_any.get(sig(lb), none) for lb in lhs.labels], dtype=bool)
        found = found.reshape(-1, steps)
        keep = found if node.op == "and" else ~found
        return Block(lhs.labels, lhs.values, lhs.present & keep)
    lhs_any: dict[tuple[object, ...], Bools] = {}
    for labels, present in zip(lhs.labels, lhs.present, strict=True):
        key = sig(labels)
        lhs_any[key] = lhs_any.get(key, none) | present
    taken = np.array([lhs_any.get(sig(lb), none) for lb in rhs.labels], dtype=bool)
    taken = taken.reshape(-1, steps)
    return Block(
        [*lhs.labels, *rhs.labels],
        np.concatenate([lhs.values, rhs.values]),
        np.concatenate([lhs.present, rhs.present & ~taken]),
    )
