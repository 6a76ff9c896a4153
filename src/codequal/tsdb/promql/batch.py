"""A range function call in a range query evaluated step by step (under ``topk``, inside a
subquery, ...): its result at every step of the query, computed once, column-wise.

The step-by-step evaluation asks the call for one step at a time; the first ask computes
all the query's steps at once with :mod:`~codequal.tsdb.promql.columnar` and later asks
read the table. The results are the per-step path's: same windows, same functions.
"""

from __future__ import annotations

from codequal.tsdb.promql.ast_adapter import Call
from codequal.tsdb.promql.callargs import (
    MATRIX_ARG,
    PARAM_ARGS,
    check_unique_labels,
    pins_metric_name,
    unwrap,
)
from codequal.tsdb.promql.columnar import ColumnarEvaluation
from codequal.tsdb.promql.context import Evaluation
from codequal.tsdb.promql.range_functions import KEEPS_METRIC_NAME
from codequal.tsdb.promql.types import Sample, Vector

__all__ = [
    "MATRIX_ARG",
    "PARAM_ARGS",
    "check_unique_labels",
    "lookup",
    "pins_metric_name",
    "unwrap",
]


def lookup(ev: Evaluation, node: Call, t: int) -> Vector | None:
    """The call's result at ``t`` if ``t`` is a step of the range query and the call has a
    columnar form; None sends the caller down the per-step path."""
    if not ev.step or t < ev.start or t > ev.end or (t - ev.start) % ev.step:
        return None
    table = ev.batches.get(id(node))
    if table is None:
        table = ev.batches[id(node)] = _compute(ev, node)
    return table.get(t)


def _compute(ev: Evaluation, node: Call) -> dict[int, Vector]:
    columns = ColumnarEvaluation(ev)
    rows = columns.range_function_rows(node)
    if rows is None:
        return {}
    labels, values, present = rows
    unique = node.func in KEEPS_METRIC_NAME or pins_metric_name(
        unwrap(node.args[MATRIX_ARG.get(node.func, 0)])
    )
    table = {}
    for k, t in enumerate(columns.times.tolist()):
        here = present[:, k]
        vector = Vector(
            Sample(labels[i], float(values[i, k]), t) for i in here.nonzero()[0].tolist()
        )
        table[t] = vector if unique else check_unique_labels(vector)
    return table
