"""A catalogue metric update vs raw prometheus_client on the same metric type and labels.

Run: ``python bench/bench_metrics.py``. Both sides run in this process, in many short rounds
interleaved and alternating which side goes first, so drift in CPU frequency or load from other
processes hits both; the table shows the median ns per operation of each side and the median of
the per-round ratios (target <= 1.2x), with their interquartile range.

The catalogue metrics are plain prometheus_client objects, so what the ratio measures is the
cost CodeQual adds on top: the capped-label lookup (``repository_label``) on the hot path.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Histogram

from codequal.telemetry.metrics import (
    ANALYSIS_STARTED,
    CRITICAL_FINDINGS,
    FAST_BUCKETS,
    HTTP_DURATION,
    repository_label,
)

OPS = 20_000
ROUNDS = 41
TARGET = 1.2
URL = "https://ci-bot:ghp_example@github.com/acme/payments-api.git"

# The raw side: same metric types, label names and buckets, in a registry of their own.
RAW = CollectorRegistry()
RAW_STARTED = Counter("bench_analysis_started_total", "raw", ["mode"], registry=RAW)
RAW_HTTP = Histogram(
    "bench_http_request_duration_seconds",
    "raw",
    ["method", "route"],
    buckets=FAST_BUCKETS,
    registry=RAW,
)
RAW_FINDINGS = Counter("bench_critical_findings_total", "raw", ["type", "repository"], registry=RAW)

Loop = Callable[[int], None]


def catalogue_counter(n: int) -> None:
    for _ in range(n):
        ANALYSIS_STARTED.labels(mode="quick").inc()


def raw_counter(n: int) -> None:
    for _ in range(n):
        RAW_STARTED.labels(mode="quick").inc()


def catalogue_histogram(n: int) -> None:
    for _ in range(n):
        HTTP_DURATION.labels(method="GET", route="/api/analyses/{id}").observe(0.042)


def raw_histogram(n: int) -> None:
    for _ in range(n):
        RAW_HTTP.labels(method="GET", route="/api/analyses/{id}").observe(0.042)


def catalogue_capped(n: int) -> None:
    for _ in range(n):
        CRITICAL_FINDINGS.labels(type="sql_injection", repository=repository_label(URL)).inc()


def raw_uncapped(n: int) -> None:
    # The raw side takes the URL as its label value, as uncapped code would.
    for _ in range(n):
        RAW_FINDINGS.labels(type="sql_injection", repository=URL).inc()


CASES: tuple[tuple[str, Loop, Loop], ...] = (
    ('counter  .labels(mode="quick").inc()', catalogue_counter, raw_counter),
    ("histogram .labels(method, route).observe()", catalogue_histogram, raw_histogram),
    ("counter, capped repository_label(url)", catalogue_capped, raw_uncapped),
)


def ns_per_op(loop: Loop) -> float:
    start = time.perf_counter_ns()
    loop(OPS)
    return (time.perf_counter_ns() - start) / OPS


class Result(NamedTuple):
    ours_ns: float  # median ns/op, catalogue side
    raw_ns: float  # median ns/op, raw side
    ratio: float  # median of the per-round ratios ours / raw
    spread: tuple[float, float]  # 25th and 75th percentile of those ratios


def measure(ours: Loop, raw: Loop) -> Result:
    """Interleaved rounds (after one warm-up each), alternating which side goes first."""
    ours(1_000)
    raw(1_000)
    ours_ns: list[float] = []
    raw_ns: list[float] = []
    for round_no in range(ROUNDS):
        if round_no % 2:
            raw_ns.append(ns_per_op(raw))
            ours_ns.append(ns_per_op(ours))
        else:
            ours_ns.append(ns_per_op(ours))
            raw_ns.append(ns_per_op(raw))
    # Ratios are taken per round pair: both sides of a pair ran within milliseconds of each
    # other, so a burst of load from another process cancels out instead of skewing one side.
    ratios = [o / r for o, r in zip(ours_ns, raw_ns, strict=True)]
    quartiles = statistics.quantiles(ratios, n=4)
    return Result(
        statistics.median(ours_ns),
        statistics.median(raw_ns),
        statistics.median(ratios),
        (quartiles[0], quartiles[2]),
    )


def main() -> int:
    print(f"{OPS:,} ops x {ROUNDS} rounds per side, median; Python {sys.version.split()[0]}")
    header = f"{'operation':<44} {'catalogue ns':>13} {'raw ns':>9} {'ratio':>7} {'p25..p75':>12}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, ours, raw in CASES:
        result = measure(ours, raw)
        worst = max(worst, result.ratio)
        low, high = result.spread
        print(
            f"{name:<44} {result.ours_ns:>13.0f} {result.raw_ns:>9.0f}"
            f" {result.ratio:>6.2f}x {low:>6.2f}..{high:.2f}"
        )
    verdict = "within" if worst <= TARGET else "OVER"
    print(f"worst ratio {worst:.2f}x: {verdict} the {TARGET}x target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
