"""PromQL evaluation with Prometheus 2.x semantics: a pure library over a ``SeriesSource``.

Parsing is done by ``promql-parser``; evaluation is ours and follows Prometheus 2.x (as
shipped in Debian's ``prometheus`` 2.42) exactly, down to the order of floating-point
operations, so that the same rule file means the same thing here and in Prometheus. Times
are integer milliseconds since the epoch throughout.

    source = InMemorySource([load_series('up{job="api"}', "1 1 0 1", 60_000)])
    Engine(source).instant("sum by (job) (up)", t=180_000)
"""

from __future__ import annotations

from codequal.tsdb.promql.engine import Engine
from codequal.tsdb.promql.notation import (
    load_series,
    parse_duration_ms,
    parse_series_labels,
    parse_series_values,
    source_from_input_series,
)
from codequal.tsdb.promql.source import InMemorySource, Matcher, MatchOp, SeriesSource
from codequal.tsdb.promql.types import (
    STALE_NAN,
    Labels,
    Matrix,
    PromQLError,
    Sample,
    Scalar,
    Series,
    String,
    Value,
    Vector,
    is_stale,
)
from codequal.tsdb.promql.wire import format_value, to_prometheus_json

__all__ = [
    "STALE_NAN",
    "Engine",
    "InMemorySource",
    "Labels",
    "MatchOp",
    "Matcher",
    "Matrix",
    "PromQLError",
    "Sample",
    "Scalar",
    "Series",
    "SeriesSource",
    "String",
    "Value",
    "Vector",
    "format_value",
    "is_stale",
    "load_series",
    "parse_duration_ms",
    "parse_series_labels",
    "parse_series_values",
    "source_from_input_series",
    "to_prometheus_json",
]
