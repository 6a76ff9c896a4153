"""Prometheus 2.42's own PromQL test suite, read from its ``.test`` files, against our engine.

Each ``eval`` case runs as Prometheus's ``promql/test.go`` runs it: an instant query at the
given time, the result compared within the suite's tolerance (every expected sample present,
no other), ``eval_fail`` expecting an error, ``eval_ordered`` checking the order too; then
the same query as a range query from one minute before to one minute after, whose middle
step must give the same answer. (test.go also re-runs each case with ``@`` added to every
selector; that needs a PromQL printer, which the engine does not have.)
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

import pytest

from codequal.tsdb.promql import (
    Engine,
    InMemorySource,
    Labels,
    PromQLError,
    Sample,
    Scalar,
    Series,
    Value,
    Vector,
)

from .promtest import SUITE, Clear, Eval, Load, almost_equal, read_test_file

MINUTE = 60_000


def _cases() -> Iterator[tuple[Eval, tuple[Series, ...]]]:
    """Every eval case with the samples loaded before it."""
    for path in sorted(SUITE.glob("*.test")):
        loaded: dict[Labels, dict[int, float]] = {}
        for command in read_test_file(path):
            if isinstance(command, Clear):
                loaded = {}
            elif isinstance(command, Load):
                for labels, values in command.series:
                    points = loaded.setdefault(labels, {})
                    for i, value in enumerate(values):
                        if value is not None:
                            points[i * command.interval_ms] = value
            else:
                yield (
                    command,
                    tuple(
                        Series(labels, array("q", sorted(p)), array("d", (p[t] for t in sorted(p))))
                        for labels, p in loaded.items()
                    ),
                )


CASES = list(_cases())


def _mismatch(case: Eval, result: Value) -> str | None:
    """Why ``result`` is not what the case expects (None when it is)."""
    if isinstance(result, Scalar):
        if case.scalar is None or not almost_equal(case.scalar, result.value):
            return f"expected {case.scalar if case.scalar is not None else case.expected}"
        return None
    if not isinstance(result, Vector):
        return f"expected a vector or scalar, got {type(result).__name__}"
    return _vector_mismatch(case, result)


def _vector_mismatch(case: Eval, result: Vector) -> str | None:
    expected = {labels: (pos, value) for pos, (labels, value) in enumerate(case.expected)}
    for pos, sample in enumerate(result):
        found = expected.get(sample.labels)
        if found is None:
            return f"unexpected {sample.labels} {sample.value} in the result"
        if case.mode == "ordered" and found[0] != pos:
            return f"{sample.labels} at position {pos}, expected at {found[0]}"
        if not almost_equal(found[1], sample.value):
            return f"{sample.labels}: expected {found[1]}, got {sample.value!r}"
    missing = expected.keys() - {s.labels for s in result}
    return f"missing {sorted(missing)}" if missing else None


def _middle_step(case: Eval, engine: Engine) -> Value:
    """The range query's point at the case's time, as an instant result."""
    matrix = engine.range(case.query, case.t - MINUTE, case.t + MINUTE, MINUTE)
    at_t = [
        Sample(s.labels, s.values[i], case.t)
        for s in matrix
        for i, t in enumerate(s.timestamps)
        if t == case.t
    ]
    if case.scalar is not None and len(at_t) == 1:
        return Scalar(at_t[0].value, case.t)
    return Vector(at_t)


@pytest.mark.parametrize(("case", "series"), CASES, ids=[c.case_id for c, _ in CASES])
def test_prometheus_promql_suite(case: Eval, series: tuple[Series, ...]) -> None:
    engine = Engine(InMemorySource(series), default_step_ms=MINUTE)
    if case.mode == "fail":
        with pytest.raises(PromQLError):
            engine.instant(case.query, case.t)
        return
    result = engine.instant(case.query, case.t)
    problem = _mismatch(case, result)
    assert problem is None, f"{case.query} at {case.t} ms: {problem}"
    if case.mode == "ordered":
        return  # the order of a range query's series is not defined
    problem = _mismatch(case, _middle_step(case, engine))
    assert problem is None, f"{case.query} in range mode: {problem}"


def test_the_suite_is_all_there() -> None:
    assert len({c.file for c, _ in CASES}) == 11
    assert len(CASES) > 400
