"""Prometheus's own suite, bit for bit: every case's answer from our engine, written as a
``promtool test rules`` expectation, must pass promtool 2.42, which compares values exactly.

The suite's runner allows a relative error of 1e-6; promtool allows none, so this pins the
same summation order and function algorithms as Go's wherever Prometheus is deterministic.
promtool cannot compare NaN (so a case whose answer holds NaN is left to the suite's runner)
and only sees samples up to the evaluation step (so each case is evaluated on that data).
"""

from __future__ import annotations

import math
import re
from functools import reduce
from pathlib import Path
from typing import Any

from codequal.tsdb.promql import STALE_NAN, Engine, InMemorySource, Scalar, Series, Vector, is_stale

from .test_prometheus_suite import CASES, MINUTE
from .test_promql_vs_promtool import _promtool, needs_promtool

# Prometheus sums (and averages, and takes variances of) series in the order the head
# created them, which promtool randomises (it loads input series from a Go map). For these
# few cases, adding three or more inexact values in another order changes the last bit:
# over 150 runs of promtool on the same file, each of them passed in some runs and failed
# in others (from 5 to 135 times). Any other aggregation found failing is retried (below).
ORDER_DEPENDENT = frozenset(
    {
        "AVG(http_requests) BY (job)",
        "stdvar(http_requests)",
        "stdvar by (instance)(http_requests)",
        "stddev(http_requests)",
        "stddev by (instance)(http_requests)",
        "histogram_quantile(0.3, avg(rate(request_duration_seconds_bucket[5m])) by (le))",
        "histogram_quantile(0.5, avg(rate(request_duration_seconds_bucket[5m])) by (le))",
        "histogram_quantile(0.5, sum(rate(request_duration_seconds_bucket[5m])) by (le))",
    }
)
SUMMING = re.compile(r"\b(sum|avg|stddev|stdvar)\b", re.IGNORECASE)
RETRIES = 8


def _values(series: Series, interval: int) -> str:
    """The series in promtool's notation at ``interval`` (gaps as ``_``)."""
    points = dict(zip(series.timestamps, series.values, strict=True))
    last = series.timestamps[-1] // interval
    out = []
    for i in range(last + 1):
        value = points.get(i * interval)
        if value is None:
            out.append("_")
        elif is_stale(value):
            out.append("stale")
        else:
            out.append(repr(value).replace("inf", "Inf").replace("nan", "NaN"))
    return " ".join(out)


def _group(query: str, t: int, series: tuple[Series, ...]) -> dict[str, Any] | None:
    """A one-case promtool test group, or None when promtool cannot check the answer."""
    horizon = t // MINUTE * MINUTE  # promtool's loader stops at the evaluation step
    source = InMemorySource(series).truncated(horizon)
    try:
        result = Engine(source, default_step_ms=MINUTE).instant(query, t)
    except Exception:  # noqa: BLE001 - promtool would fail too; the suite runner covers it
        return None
    pairs = (
        [("{}", result.value)]
        if isinstance(result, Scalar)
        else [(str(s.labels), s.value) for s in result]
        if isinstance(result, Vector)
        else []
    )
    if not isinstance(result, Scalar | Vector) or any(math.isnan(v) for _, v in pairs):
        return None
    kept = [s for s in source if s.timestamps]
    stamps = [t for s in kept for t in s.timestamps if t > 0]
    interval = reduce(math.gcd, stamps, 0) or MINUTE
    return {
        "interval": f"{interval}ms",
        "input_series": [{"series": str(s.labels), "values": _values(s, interval)} for s in kept],
        "promql_expr_test": [
            {
                "expr": query,
                "eval_time": f"{t}ms",
                "exp_samples": [{"labels": lb, "value": v} for lb, v in pairs],
            }
        ],
    }


@needs_promtool
def test_the_suite_answers_are_exactly_promtools(tmp_path: Path) -> None:
    groups = [
        group
        for case, series in CASES
        if case.mode != "fail"
        and case.query not in ORDER_DEPENDENT
        and (group := _group(case.query, case.t, series)) is not None
    ]
    assert len(groups) > 450
    failed = _failures(groups, tmp_path)
    # A summing aggregation promtool happened to add up in another order this run: accepted
    # if promtool agrees on a rerun (a real difference fails every time).
    for _ in range(RETRIES):
        retry = [g for g in groups if _expr(g) in failed and SUMMING.search(_expr(g))]
        if not retry:
            break
        failed -= set(map(_expr, retry)) - _failures(retry, tmp_path)
    assert not failed, f"promtool disagrees on {len(failed)} of {len(groups)}: {sorted(failed)}"


def _expr(group: dict[str, Any]) -> str:
    return str(group["promql_expr_test"][0]["expr"])


def _failures(groups: list[dict[str, Any]], tmp_path: Path) -> set[str]:
    doc = {"rule_files": [], "evaluation_interval": f"{MINUTE}ms", "tests": groups}
    run = _promtool(doc, tmp_path)
    failed = set(re.findall(r'expr: "(.*?)", time: ', run.stdout + run.stderr))
    assert failed or run.returncode == 0, run.stdout + run.stderr
    return failed


def test_the_order_dependent_cases_are_in_the_suite() -> None:
    assert {case.query for case, _ in CASES} >= ORDER_DEPENDENT


def test_stale_markers_are_written_as_promtool_reads_them() -> None:
    from codequal.tsdb.promql import Labels

    s = Series(Labels.of({"__name__": "x"}), [0, 120_000, 180_000], [1.0, STALE_NAN, math.inf])
    assert _values(s, 60_000) == "1.0 _ stale Inf"
