"""What function-call evaluation needs from the query being evaluated.

The engine implements this; :mod:`~codequal.tsdb.promql.calls` and
:mod:`~codequal.tsdb.promql.batch` depend on it alone, so nothing imports the engine back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from codequal.tsdb.promql.ast_adapter import At, Node, VectorSelector
from codequal.tsdb.promql.limits import Budget
from codequal.tsdb.promql.types import Series, Value, Vector


class Evaluation(Protocol):
    """One query's evaluation: its time range, its budget and its per-node caches."""

    start: int
    end: int
    step: int  # 0 for an instant query
    budget: Budget
    batches: dict[int, dict[int, Vector]]  # batch results by node id, then step time

    @property
    def lookback_ms(self) -> int:
        """How far back an instant selector looks for a sample."""
        ...

    def eval(self, node: Node, t: int) -> Value: ...

    def resolve(self, at: At | None, t: int) -> int: ...

    def series(self, selector: VectorSelector, drop_stale: bool) -> list[Series]: ...

    def series_runs(self, selector: VectorSelector) -> Iterator[list[Series]]: ...

    def instant_selector(
        self, node: VectorSelector, t: int, sample_time: bool = False
    ) -> Vector: ...

    def window_ref(self, node: Node, t: int) -> tuple[int, int]: ...
