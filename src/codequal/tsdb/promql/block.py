"""Columns for range queries: an instant-vector expression at every step, one row per series.

A :class:`Block` holds, for each series (row), its value at each step of the query and
whether it has one there (PromQL's NaN is a value, so absence needs its own mask). A scalar
expression is a plain float array, one value per step. The columnar evaluator works on whole
rows with numpy; the results are the step-by-step engine's, bit for bit.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from codequal.tsdb.promql.types import Labels, Matrix, PromQLError, Series

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

DUPLICATE_LABELSET = "vector cannot contain metrics with the same labelset"


@dataclass(frozen=True, slots=True)
class Block:
    """Rows of series: ``values`` and ``present`` are (rows, steps) arrays."""

    labels: list[Labels]
    values: Floats
    present: Bools

    @property
    def cells(self) -> int:
        return int(self.values.size)

    @classmethod
    def empty(cls, steps: int) -> Block:
        return cls([], np.empty((0, steps)), np.zeros((0, steps), dtype=bool))


def unique_rows(block: Block) -> Block:
    """One row per label set: rows with the same labels are merged when they never have a
    value at the same step, else the step-by-step engine's error is raised."""
    if len(set(block.labels)) == len(block.labels):
        return block
    rows: dict[Labels, list[int]] = {}
    for i, labels in enumerate(block.labels):
        rows.setdefault(labels, []).append(i)
    values = np.empty((len(rows), block.values.shape[1]))
    present = np.zeros((len(rows), block.values.shape[1]), dtype=bool)
    for out, members in enumerate(rows.values()):
        if len(members) > 1 and (block.present[members].sum(axis=0) > 1).any():
            raise PromQLError(DUPLICATE_LABELSET)
        for i in members:
            mask = block.present[i]
            values[out, mask] = block.values[i, mask]
            present[out] |= mask
    return Block(list(rows), values, present)


def to_matrix(block: Block, times: Ints) -> Matrix:
    """The range query's result: each row's points at the steps where it has a value."""
    block = unique_rows(block)
    out = []
    for labels, values, mask in zip(block.labels, block.values, block.present, strict=True):
        if mask.any():
            ts = array("q", times[mask].tobytes())
            out.append(Series(labels, ts, array("d", values[mask].tobytes())))
    return Matrix(sorted(out, key=lambda s: s.labels))


def scalar_block(values: Floats) -> Block:
    """A scalar as a one-row, label-less block (``vector(s)``, a scalar range result)."""
    return Block([Labels()], values.reshape(1, -1).copy(), np.ones((1, values.size), dtype=bool))
