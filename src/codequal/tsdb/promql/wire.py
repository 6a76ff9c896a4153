"""Results in the Prometheus HTTP API's ``data`` shape (``/api/v1/query``, ``query_range``)."""

from __future__ import annotations

import math
from typing import Any

import orjson

from codequal.tsdb.promql.gomath import format_float
from codequal.tsdb.promql.types import Matrix, Scalar, String, Value, Vector


def format_value(value: float) -> str:
    """A sample value as Prometheus's API writes it: shortest round-trip digits, "+Inf",
    "-Inf", "NaN"; plain notation except below 1e-6 and from 1e21 (exponent there)."""
    if math.isfinite(value) and value != 0 and not 1e-6 <= abs(value) < 1e21:
        return repr(value)  # Python's repr spells these exactly like Go's 'e' format
    return format_float(value)


def format_time(t: int) -> int | float:
    """Milliseconds to the API's seconds: an integer when whole, else 3 decimals at most."""
    return t // 1000 if t % 1000 == 0 else t / 1000


def _point(t: int, value: float) -> list[Any]:
    return [format_time(t), format_value(value)]


def to_prometheus_json(result: Value) -> dict[str, Any]:
    """``{"resultType": ..., "result": ...}`` for a vector, matrix, scalar or string."""
    if isinstance(result, Vector):
        return {
            "resultType": "vector",
            "result": [
                {"metric": s.labels.to_dict(), "value": _point(s.t, s.value)} for s in result
            ],
        }
    if isinstance(result, Matrix):
        return {
            "resultType": "matrix",
            "result": [
                {
                    "metric": s.labels.to_dict(),
                    "values": [_point(t, v) for t, v in zip(s.timestamps, s.values, strict=True)],
                }
                for s in result
            ],
        }
    if isinstance(result, Scalar):
        return {"resultType": "scalar", "result": _point(result.t, result.value)}
    if isinstance(result, String):
        return {"resultType": "string", "result": [format_time(result.t), result.value]}
    raise TypeError(f"not a PromQL value: {result!r}")


def success_json(result: Value) -> bytes:
    """``{"status":"success","data":...}`` as bytes, written series by series.

    The same document as ``to_prometheus_json`` inside a success envelope, without building
    a list per point first: a 24 h range answer of thousands of series holds millions of
    points, and their nested lists would cost ~10 times the JSON they become.
    """
    if not isinstance(result, Matrix):
        return orjson.dumps({"status": "success", "data": to_prometheus_json(result)})
    parts = [b'{"status":"success","data":{"resultType":"matrix","result":[']
    for i, s in enumerate(result):
        points = ",".join(
            f'[{_time_text(t)},"{format_value(v)}"]'
            for t, v in zip(s.timestamps, s.values, strict=True)
        )
        head = b'{"metric":' if i == 0 else b',{"metric":'
        parts += [head, orjson.dumps(s.labels.to_dict()), b',"values":[', points.encode(), b"]}"]
    parts.append(b"]}}")
    return b"".join(parts)


def _time_text(t: int) -> str:
    return str(t // 1000) if t % 1000 == 0 else repr(t / 1000)
