"""Differential test: our engine's answers, written as promtool rule tests, pass in Prometheus.

Every expression below is evaluated by our engine; the result becomes the ``exp_samples`` of a
``promql_expr_test`` and ``promtool test rules`` (the real Prometheus 2.x engine) must agree.
promtool compares values exactly (``reflect.DeepEqual``), so this pins bit-identical floats;
NaN never compares equal there, hence no case may produce NaN.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from codequal.tsdb.promql import Engine, Scalar, Vector, source_from_input_series

PROMTOOL = shutil.which("promtool")
REQUIRE_SERVICES = os.environ.get("CODEQUAL_REQUIRE_SERVICES") == "1"
EVALUATION_INTERVAL_MS = 60_000  # promtool's default; also its default subquery step

COUNTERS = [
    ('http_requests_total{job="api", instance="a", code="200"}', "0+10x20 5+10x25"),
    ('http_requests_total{job="api", instance="b", code="500"}', "0+1x10 _x5 20+3x30"),
    ('http_requests_total{job="web", instance="a", code="200"}', "100+7.3x45"),
    (
        'http_requests_total{job="web", instance="b", code="404"}',
        "3 5 8 13 21 34 1 2 3 _ _ 9 stale 10 11 12 40+2.5x30",
    ),
]
GAUGES = [
    ('gauge{job="api", instance="a"}', "5 3 8 -2 0.5 1e3 7 7 7 -4.25 12 9 1 0 3 2.2+0.7x30"),
    ('gauge{job="web", instance="b"}', "1.5+0.25x45"),
    ('disk_used_bytes{mount="/", instance="a"}', "1000+37x45"),
    ('disk_total_bytes{mount="/", instance="a"}', "10000x45"),
    ('info{instance="a", version="1.2"}', "1x45"),
    ('info{instance="b", version="1.3"}', "1x45"),
    ('temp{sensor="x"}', "1 2 3 stale _x10 4 5"),
    ('only_old{a="b"}', "7"),
    # Dyadic values (exact in binary) for avg / stddev / stdvar / sum; see AGGREGATIONS.
    ('load{zone="z1", host="h1"}', "0.25+0.5x45"),
    ('load{zone="z1", host="h2"}', "3-0.125x45"),
    ('load{zone="z2", host="h3"}', "1.5 2.75 -4 8.5 0.0625 16x40"),
    ('load{zone="z2", host="h4"}', "-2+0.375x45"),
]
BUCKETS = [
    ('req_seconds_bucket{job="api", le="0.1"}', "0+3x45"),
    ('req_seconds_bucket{job="api", le="0.5"}', "0+8x45"),
    ('req_seconds_bucket{job="api", le="1"}', "0+9x45"),
    ('req_seconds_bucket{job="api", le="+Inf"}', "0+10x45"),
    # Not monotonic (a torn scrape): Prometheus fixes it up before interpolating.
    ('req_seconds_bucket{job="web", le="0.25"}', "0+5x45"),
    ('req_seconds_bucket{job="web", le="1"}', "0+4x45"),
    ('req_seconds_bucket{job="web", le="2.5"}', "0+6x45"),
    ('req_seconds_bucket{job="web", le="+Inf"}', "0+6x45"),
]
SERIES = COUNTERS + GAUGES + BUCKETS

RATES = [
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[1m])",
    "rate(http_requests_total[2m])",
    "rate(http_requests_total[3m])",
    "increase(http_requests_total[10m])",
    "increase(http_requests_total[2m])",
    "irate(http_requests_total[5m])",
    "delta(gauge[5m])",
    "idelta(gauge[3m])",
    "resets(http_requests_total[10m])",
    "changes(gauge[10m])",
    "deriv(gauge[10m])",
    "deriv(disk_used_bytes[10m])",
    "predict_linear(disk_used_bytes[10m], 3600)",
    "predict_linear(gauge[5m], 600)",
    "deriv(disk_total_bytes[5m])",
    "predict_linear(disk_total_bytes[5m], 60)",
    "rate(http_requests_total[5m] offset 2m)",
    "increase(http_requests_total[5m] @ 600)",
    "http_requests_total offset -2m",
    "gauge @ 300 offset 1m",
    "rate(http_requests_total[5m] @ 900 offset 2m)",
    "last_over_time(gauge[5m] offset 3m)",
    "sum by (job) (increase(http_requests_total[10m] offset 5m))",
]
OVER_TIME = [
    f"{fn}_over_time(gauge[{window}])"
    for fn in ("avg", "min", "max", "sum", "count", "stddev", "stdvar", "last", "present")
    for window in ("5m", "10m")
] + ["quantile_over_time(0.3, gauge[10m])", "quantile_over_time(0.5, gauge[5m])"]
# Prometheus aggregates series in storage order, which promtool randomises (it loads the
# input series from a Go map). Floating-point addition is not associative, so sum / avg /
# stddev / stdvar of three or more inexact values legitimately differ in the last bit from
# run to run; here they run on sums of two values (commutative) or on exact dyadic values.
AGGREGATIONS = [
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum without (instance) (rate(http_requests_total[5m]))",
    "sum(floor(http_requests_total))",
    "sum(load)",
    "sum by (zone) (load)",
    "avg by (zone) (load)",
    "stddev by (zone) (load)",
    "stdvar without (host) (load)",
    "min(http_requests_total)",
    "max by (code) (http_requests_total)",
    "count(http_requests_total) by (job)",
    "quantile(0.3, http_requests_total)",
    "quantile by (job) (0.9, http_requests_total)",
    "topk(2, http_requests_total)",
    "bottomk by (job) (1, http_requests_total)",
    'count_values("value", gauge)',
    'count_values without (instance) ("v", round(http_requests_total / 100))',
    "group by (job) (http_requests_total)",
]
FUNCTIONS = [
    "abs(gauge)",
    "ceil(gauge)",
    "floor(gauge)",
    "round(gauge)",
    "round(gauge, 0.5)",
    "clamp(gauge, 0, 5)",
    "clamp_min(gauge, 2)",
    "clamp_max(gauge, 2)",
    "absent(nonexistent)",
    'absent(gauge{job="api"})',
    'absent(nonexistent{job="a", x=~"y", z="1", z="2"})',
    "absent_over_time(temp[1m])",
    'absent_over_time(nonexistent{a="b"}[5m])',
    "time()",
    "vector(1)",
    'scalar(gauge{job="api"})',
    'scalar(gauge{job="api"}) * gauge',
    'label_replace(http_requests_total, "svc", "$1-x", "job", "(a.)(.*)")',
    'label_replace(gauge, "job", "", "job", ".*")',
    'label_join(http_requests_total, "foo", "-", "job", "instance")',
    "sort(gauge)",
    "sort_desc(http_requests_total)",
    "timestamp(gauge)",
    "timestamp(temp)",
    "time() - timestamp(gauge)",
    "vector(time()) - on() group_right timestamp(gauge)",
    "histogram_quantile(0.9, rate(req_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(req_seconds_bucket[5m])))",
    "histogram_quantile(0, req_seconds_bucket)",
    "histogram_quantile(1, req_seconds_bucket)",
    "histogram_quantile(0.99, req_seconds_bucket)",
]
OPERATORS = [
    "http_requests_total * 2 + 1",
    "gauge ^ 2",
    "gauge % 3",
    "2 ^ gauge",
    "1 - gauge",
    "-gauge",
    "-(1 + 2) * 3 / 4",
    "gauge > 2",
    "gauge > bool 2",
    "2 < gauge",
    "http_requests_total == bool 50",
    "gauge != 7",
    "disk_used_bytes / disk_total_bytes",
    "disk_used_bytes / ignoring(instance) disk_total_bytes",
    "disk_used_bytes > on(mount) disk_total_bytes * 0.11",
    "http_requests_total and on(job, instance) gauge",
    "gauge or http_requests_total",
    'http_requests_total unless on(job) gauge{job="web"}',
    "http_requests_total * on(instance) group_left(version) info",
    "info * on(instance) group_right(version) http_requests_total",
    "sum by (job, code) (rate(http_requests_total[5m])) / on(job) group_left "
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total[5m])) by (job) > 0.1",
    'http_requests_total{job=~"a.*"}',
    'http_requests_total{code!~"2.."}',
    '{__name__=~"gauge|disk_.*"}',
    'http_requests_total{job!="api"}',
    'http_requests_total{code=~"2..|404", job!~""}',
]
SUBQUERIES = [
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "avg_over_time(gauge[10m:2m])",
    "min_over_time(deriv(gauge[5m])[10m:])",
    "rate(http_requests_total[5m:30s])",
    "sum_over_time(gauge[7m:1m] offset 3m)",
    "max_over_time(sum by (job) (rate(http_requests_total[2m]))[15m:90s])",
    "max_over_time(gauge[10m:1m] @ 900)",
    "min_over_time(rate(http_requests_total[3m])[6m:2m] offset 1m)",
]
STALENESS = ["temp", "only_old", "count_over_time(temp[10m])", "last_over_time(temp[20m])"]

EXPRESSIONS = RATES + OVER_TIME + AGGREGATIONS + FUNCTIONS + OPERATORS + SUBQUERIES + STALENESS
EVAL_TIMES_MS = [150_000, 600_000, 1_230_000, 1_845_000]
STALENESS_TIMES_MS = [120_000, 200_000, 240_000, 300_000, 360_000, 420_000, 900_000]

# Scraped every 15 s, with resets, gaps and jitter-free but uneven coverage, for the
# extrapolation rules of rate / increase / delta near the window edges.
FAST_SERIES = [
    ('jobs_total{queue="q1"}', "0+4x30 3+4x30 _x12 200+1.5x40"),
    ('jobs_total{queue="q2"}', "_x7 10+0.25x60 _ _ _ 30+0.25x40"),
    ('jobs_total{queue="q3"}', "50 49 48 47 46 45 44 43 100 101 _x3 90+13x80"),
    ('lat_bucket{le="0.05"}', "0+1x150"),
    ('lat_bucket{le="0.2"}', "0+6x150"),
    ('lat_bucket{le="+Inf"}', "0+7x150"),
]
FAST_EXPRESSIONS = [
    "rate(jobs_total[1m])",
    "rate(jobs_total[5m])",
    "increase(jobs_total[2m])",
    "increase(jobs_total[10m])",
    "irate(jobs_total[1m])",
    "delta(jobs_total[3m])",
    "deriv(jobs_total[4m])",
    "predict_linear(jobs_total[5m], 86400)",
    "resets(jobs_total[30m])",
    "changes(jobs_total[30m])",
    "increase(jobs_total[5m] offset 1m)",
    "sum(rate(jobs_total[5m])) by (queue)",
    "histogram_quantile(0.95, rate(lat_bucket[1m]))",
    "histogram_quantile(0.5, increase(lat_bucket[5m]))",
    "max_over_time(rate(jobs_total[1m])[10m:15s])",
    "avg_over_time(irate(jobs_total[1m])[5m:])",
]
FAST_EVAL_TIMES_MS = [95_000, 420_000, 610_000, 1_000_000, 1_333_000, 2_100_000]


def _exp_samples(result: object) -> list[dict[str, Any]]:
    if isinstance(result, Scalar):
        pairs = [("{}", result.value)]
    else:
        assert isinstance(result, Vector), result
        pairs = [(str(s.labels), s.value) for s in result]
    assert not any(math.isnan(v) for _, v in pairs), "promtool cannot compare NaN"
    return [{"labels": labels, "value": value} for labels, value in pairs]


def _group(
    series: list[tuple[str, str]],
    interval_ms: int,
    expressions: list[tuple[str, list[int]]],
) -> dict[str, Any]:
    """One promtool test group; its expectations are our engine's answers."""
    input_series = [{"series": s, "values": v} for s, v in series]
    source = source_from_input_series(input_series, interval_ms)
    # promtool loads samples only up to the last rule evaluation step before the group's
    # latest eval_time; with the same cut we see exactly its data (negative offsets too).
    latest = max(t for _, times in expressions for t in times)
    horizon = latest // EVALUATION_INTERVAL_MS * EVALUATION_INTERVAL_MS
    engine = Engine(source.truncated(horizon), default_step_ms=EVALUATION_INTERVAL_MS)
    cases = [
        {"expr": e, "eval_time": f"{t}ms", "exp_samples": _exp_samples(engine.instant(e, t))}
        for e, times in expressions
        for t in times
    ]
    return {"interval": f"{interval_ms}ms", "input_series": input_series, "promql_expr_test": cases}


def build_rule_test() -> dict[str, Any]:
    """A promtool rule-test document whose expectations are our engine's answers."""
    main = [(e, EVAL_TIMES_MS) for e in EXPRESSIONS] + [(e, STALENESS_TIMES_MS) for e in STALENESS]
    fast = [(e, FAST_EVAL_TIMES_MS) for e in FAST_EXPRESSIONS]
    return {
        "rule_files": [],
        "evaluation_interval": f"{EVALUATION_INTERVAL_MS}ms",
        "tests": [_group(SERIES, 60_000, main), _group(FAST_SERIES, 15_000, fast)],
    }


def _cases(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [case for group in doc["tests"] for case in group["promql_expr_test"]]


def _promtool(doc: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is required (CODEQUAL_REQUIRE_SERVICES=1)"
    path = tmp_path / "promql_test.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return subprocess.run(
        [PROMTOOL, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not REQUIRE_SERVICES,
    reason="promtool not installed (Debian package prometheus); required when "
    "CODEQUAL_REQUIRE_SERVICES=1",
)


@needs_promtool
def test_engine_results_pass_promtool_rule_tests(tmp_path: Path) -> None:
    doc = build_rule_test()
    cases = _cases(doc)
    assert len(cases) > 600
    assert sum(1 for c in cases if c["exp_samples"]) > 550, "too many empty results to compare"
    run = _promtool(doc, tmp_path)
    assert run.returncode == 0, f"promtool disagrees:\n{run.stdout}\n{run.stderr}"


@needs_promtool
def test_promtool_rejects_a_result_one_ulp_off(tmp_path: Path) -> None:
    """The comparison is exact, so agreement above means bit-identical floats."""
    doc = build_rule_test()
    case = next(c for c in _cases(doc) if c["expr"] == "rate(http_requests_total[5m])")
    sample = case["exp_samples"][0]
    sample["value"] = math.nextafter(sample["value"], math.inf)
    run = _promtool(doc, tmp_path)
    assert run.returncode != 0
    assert 'expr: "rate(http_requests_total[5m])"' in run.stdout + run.stderr
