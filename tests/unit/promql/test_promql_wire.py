"""The API's answer bytes: the same document as ``to_prometheus_json`` in a success envelope."""

from __future__ import annotations

import json
import math

import pytest

from codequal.tsdb.promql import Labels, Matrix, Sample, Scalar, Series, String, Vector
from codequal.tsdb.promql.gomath import format_float
from codequal.tsdb.promql.wire import success_json, to_prometheus_json

VALUES = [0.0, -0.0, 1.0, 0.1, 1e-7, 5e-324, 1e21, 123456789.125, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize(
    "result",
    [
        Matrix(
            [
                Series(
                    Labels.of({"__name__": "a", "q": 'x"y\\\u00e9'}),
                    [1000, 1500, 2001],
                    [1.0, 2.5, -3e30],
                ),
                Series(Labels(), list(range(0, 11_000, 1000)), VALUES),
            ]
        ),
        Matrix([]),
        Vector([Sample(Labels.of({"a": "b"}), 0.5, 1234)]),
        Scalar(math.nan, 1000),
        String("s", 2000),
    ],
)
def test_answer_bytes_are_the_prometheus_json_document(result: object) -> None:
    assert json.loads(success_json(result)) == {  # type: ignore[arg-type]
        "status": "success",
        "data": to_prometheus_json(result),  # type: ignore[arg-type]
    }


def test_shortest_fixed_notation_matches_go_formatting() -> None:
    assert [format_float(v) for v in (100.0, 0.1, -0.0, 1e16, 1e21, 2.5e-7)] == [
        "100",
        "0.1",
        "-0",
        "10000000000000000",
        "1000000000000000000000",
        "0.00000025",
    ]
