"""Instant-vector functions over columns (every step of a range query at once).

Each applies the step-by-step engine's own scalar function to every cell, so results are the
same; functions not listed here are evaluated step by step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from codequal.tsdb.promql import gomath
from codequal.tsdb.promql.ast_adapter import Call, Node, StringLiteral
from codequal.tsdb.promql.block import Block, Floats, Ints, scalar_block, unique_rows
from codequal.tsdb.promql.functions import INSTANT_FUNCTIONS, MATH_FUNCTIONS
from codequal.tsdb.promql.histograms import BUCKET_LABEL, bucket_quantile
from codequal.tsdb.promql.types import METRIC_NAME, Labels, Sample, String, Value, Vector

Column = Block | Floats


class Columns(Protocol):
    """What a function needs from the columnar evaluation (its arguments' columns)."""

    times: Ints

    def column(self, node: Node) -> Column: ...

    def release(self, *columns: Column) -> None: ...


InstantColumn = Callable[[Columns, Call], Column | None]


def _args(col: Columns, node: Call) -> list[Column]:
    columns = [col.column(arg) for arg in node.args]
    col.release(*columns)
    return columns


def _cellwise(fn: Callable[..., float], *arrays: Floats) -> Floats:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.asarray(np.frompyfunc(fn, len(arrays), 1)(*arrays), dtype=np.float64)


def _vector_then_scalars(columns: list[Column]) -> tuple[Block, list[Floats]] | None:
    vector, *scalars = columns
    if not isinstance(vector, Block) or not all(isinstance(s, np.ndarray) for s in scalars):
        return None
    return vector, [s for s in scalars if isinstance(s, np.ndarray)]


def _nameless(block: Block, values: Floats, present: np.ndarray | None = None) -> Block:
    mask = block.present if present is None else present
    return unique_rows(Block([lb.drop_name() for lb in block.labels], values, mask))


def _math(fn: Callable[[float], float]) -> InstantColumn:
    def apply(col: Columns, node: Call) -> Column | None:
        (vector,) = _args(col, node)
        if not isinstance(vector, Block):
            return None
        return _nameless(vector, _cellwise(fn, vector.values))

    return apply


def _round(col: Columns, node: Call) -> Column | None:
    found = _vector_then_scalars(_args(col, node))
    if found is None:
        return None
    vector, scalars = found
    ones = np.ones(col.times.size)
    inverse = _cellwise(gomath.div, ones, scalars[0] if scalars else ones)
    rounded = _cellwise(
        lambda v, inv: gomath.div(gomath.floor(v * inv + 0.5), inv), vector.values, inverse
    )
    return _nameless(vector, rounded)


def _clamp(col: Columns, node: Call) -> Column | None:
    found = _vector_then_scalars(_args(col, node))
    if found is None:
        return None
    vector, scalars = found
    name = node.func
    if name == "clamp":
        low, high = scalars
        between = _cellwise(
            lambda v, lo, hi: gomath.fmax(lo, gomath.fmin(hi, v)), vector.values, low, high
        )
        return _nameless(vector, between, vector.present & ~(high < low))
    (bound,) = scalars
    fn = gomath.fmax if name == "clamp_min" else gomath.fmin
    return _nameless(vector, _cellwise(lambda v, b: fn(b, v), vector.values, bound))


def _time(col: Columns, node: Call) -> Column:
    return col.times / 1000


def _vector(col: Columns, node: Call) -> Column | None:
    (scalar,) = _args(col, node)
    return scalar_block(scalar) if isinstance(scalar, np.ndarray) else None


def _scalar(col: Columns, node: Call) -> Column | None:
    (vector,) = _args(col, node)
    if not isinstance(vector, Block):
        return None
    only = vector.present.sum(axis=0) == 1
    first = np.argmax(vector.present, axis=0) if vector.labels else np.zeros(col.times.size, int)
    picked = vector.values[first, np.arange(col.times.size)] if vector.labels else np.zeros(0)
    return np.where(only, picked, np.nan) if vector.labels else np.full(col.times.size, np.nan)


def _sorted(col: Columns, node: Call) -> Column | None:
    (vector,) = _args(col, node)
    return vector if isinstance(vector, Block) else None  # order is not part of a range result


def _histogram_quantile(col: Columns, node: Call) -> Column | None:
    found = _vector_then_scalars(list(reversed(_args(col, node))))
    if found is None:
        return None
    vector, (q,) = found
    groups: dict[Labels, list[tuple[int, float]]] = {}
    for row, labels in enumerate(vector.labels):
        bound = gomath.parse_float(labels.get(BUCKET_LABEL))
        if bound is not None:
            groups.setdefault(labels.without((BUCKET_LABEL,)), []).append((row, bound))
    steps = col.times.size
    values = np.zeros((len(groups), steps))
    present = np.zeros((len(groups), steps), dtype=bool)
    for g, members in enumerate(groups.values()):
        rows = [row for row, _ in members]
        bounds = [bound for _, bound in members]
        mask, cells = vector.present[rows], vector.values[rows]
        for k in np.flatnonzero(mask.any(axis=0)):
            here = mask[:, k]
            buckets = [
                (b, float(v)) for b, v, h in zip(bounds, cells[:, k], here, strict=True) if h
            ]
            values[g, k], present[g, k] = bucket_quantile(float(q[k]), buckets), True
    names = [key.without((METRIC_NAME,)) for key in groups]
    return unique_rows(Block(names, values, present))


def _relabel(col: Columns, node: Call) -> Column | None:
    """label_replace / label_join: the labels change per row, the values do not."""
    strings = node.args[1:]
    if not all(isinstance(a, StringLiteral) for a in strings):
        return None
    vector = col.column(node.args[0])
    col.release(vector)
    if not isinstance(vector, Block):
        return None
    args: list[Value] = [
        Vector(Sample(labels, 0.0, 0) for labels in vector.labels),
        *(String(a.value, 0) for a in strings if isinstance(a, StringLiteral)),
    ]
    relabelled = INSTANT_FUNCTIONS[node.func](args, 0)
    assert isinstance(relabelled, Vector)
    return unique_rows(Block([s.labels for s in relabelled], vector.values, vector.present))


INSTANT: dict[str, InstantColumn] = {
    **{name: _math(fn) for name, fn in MATH_FUNCTIONS.items()},
    "round": _round,
    "clamp": _clamp,
    "clamp_min": _clamp,
    "clamp_max": _clamp,
    "time": _time,
    "vector": _vector,
    "scalar": _scalar,
    "sort": _sorted,
    "sort_desc": _sorted,
    "histogram_quantile": _histogram_quantile,
    "label_replace": _relabel,
    "label_join": _relabel,
}
