"""Fixtures for the PromQL engine tests: an engine over series written in promtool notation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from codequal.tsdb.promql import Engine, Scalar, Value, Vector, source_from_input_series

MINUTE = 60_000


class EngineUnderTest:
    """An engine plus shorthands that turn results into plain dicts for assertions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def instant(self, expr: str, t: int) -> Value:
        return self.engine.instant(expr, t)

    def values(self, expr: str, t: int) -> dict[str, float]:
        """A vector as {labels: value} (``{}`` for no labels), a scalar as {"scalar": v}."""
        result = self.engine.instant(expr, t)
        if isinstance(result, Scalar):
            return {"scalar": result.value}
        assert isinstance(result, Vector), result
        return {str(s.labels): s.value for s in result}

    def value(self, expr: str, t: int) -> float:
        """The only value of a one-element result."""
        (only,) = self.values(expr, t).values()
        return only


@pytest.fixture
def make_engine() -> Callable[..., EngineUnderTest]:
    """``make_engine({'up{job="a"}': "1 1 0"}, interval_ms=60_000)``; times are ms."""

    def build(
        series: dict[str, str], interval_ms: int = MINUTE, **engine_args: int
    ) -> EngineUnderTest:
        entries = [{"series": s, "values": v} for s, v in series.items()]
        return EngineUnderTest(
            Engine(source_from_input_series(entries, interval_ms), **engine_args)
        )

    return build
