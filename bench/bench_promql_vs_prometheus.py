"""The embedded PromQL engine against Prometheus 2.42, side by side on the same history.

~2 000 CodeQual-shaped series (bench_rules.py's: analyses by mode and error type, errors by
service, HTTP requests by route, the analysis duration histogram, DeepWiki and memory gauges)
scraped every 15 s for 24 h go into CodeQual's store (SQLite, appended as the scraper does)
and, through an OpenMetrics file and ``promtool tsdb create-blocks-from openmetrics``, into
Debian's Prometheus 2.42 on a loopback port. Then, interleaved (ours, theirs, ours, ...):

* the rule and dashboard queries below, instant at the end of the history and as a 24 h
  range query at one point a minute: median time of each side and the ratio;
* one evaluation round of every shipped rule expression (sum of the instant queries).

Ours runs in process (engine + Prometheus JSON encoding); Prometheus over HTTP on loopback.
Every answer is checked to agree (same series, same timestamps, values within 1e-9).
Run: python bench/bench_promql_vs_prometheus.py [--hours 24] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_rules import expressions, generate, write_openmetrics
from bench_tsdb import START_S, STEP_S, TimedSource, agree, ingest, prometheus, table
from codequal.storage.db import open_database
from codequal.tsdb.promql import Engine, to_prometheus_json
from codequal.tsdb.store import SampleStore

QUERIES = [
    "sum by (mode) (rate(codequal_analysis_started_total[5m]))",
    "sum without (mode, error_type) (rate(codequal_analysis_failed_total[5m]))"
    " / sum without (mode) (rate(codequal_analysis_started_total[5m]))",
    "histogram_quantile(0.95, sum by (le) (rate(codequal_analysis_duration_seconds_bucket[5m])))",
    "sum(rate(codequal_analysis_duration_seconds_sum[5m]))"
    " / sum(rate(codequal_analysis_duration_seconds_count[5m]))",
    'sum by (route) (rate(codequal_http_requests_total{status=~"5.."}[5m]))'
    " / sum by (route) (rate(codequal_http_requests_total[5m]))",
    "sum without (error_type) (rate(codequal_errors_total[5m])) > 0.1",
    "predict_linear(codequal_deepwiki_disk_available_bytes[1h], 4 * 3600)",
    "avg_over_time(codequal_system_memory_usage_ratio[10m]) > 0.9",
]


def median_pair(
    ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int
) -> tuple[float, float, Any, Any]:
    """Interleaved runs: (our median s, their median s, our last answer, their last answer)."""
    ours_times, theirs_times = [], []
    mine = other = None
    for _ in range(repeat):
        started = time.perf_counter()
        mine = ours()
        ours_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        other = theirs()
        theirs_times.append(time.perf_counter() - started)
    return statistics.median(ours_times), statistics.median(theirs_times), mine, other


def run_queries(engine: Engine, client: httpx.Client, url: str, end_s: int, args: Any) -> list:
    rows: list[list[str]] = []
    start_s = end_s - args.hours * 3600 + 3600

    def ours_json(fn: Callable[[], Any]) -> Callable[[], Any]:
        return lambda: orjson.loads(orjson.dumps(to_prometheus_json(fn())))

    def prom(path: str, **params: Any) -> Callable[[], Any]:
        return lambda: client.get(f"{url}/api/v1/{path}", params=params).json()["data"]

    for kind in ("instant", "range"):
        for query in QUERIES:
            if kind == "instant":
                mine = ours_json(lambda q=query: engine.instant(q, end_s * 1000))
                theirs = prom("query", query=query, time=end_s)
            else:
                step = args.range_step
                mine = ours_json(
                    lambda q=query, s=step: engine.range(q, start_s * 1000, end_s * 1000, s * 1000)
                )
                theirs = prom("query_range", query=query, start=start_s, end=end_s, step=step)
            ours_s, theirs_s, a, b = median_pair(mine, theirs, args.repeat)
            rows.append([kind, query[:70], *_cells(ours_s, theirs_s), _yes(agree(a, b))])
    return rows


def rule_round(engine: Engine, client: httpx.Client, url: str, end_s: int, repeat: int) -> list:
    exprs = expressions()

    def ours() -> list[Any]:
        return [to_prometheus_json(engine.instant(e, end_s * 1000)) for e in exprs]

    def theirs() -> list[Any]:
        return [
            client.get(f"{url}/api/v1/query", params={"query": e, "time": end_s}).json()["data"]
            for e in exprs
        ]

    ours_s, theirs_s, a, b = median_pair(ours, theirs, repeat)
    same = all(agree(x, y) for x, y in zip(a, b, strict=True))
    return [
        "round",
        f"all {len(exprs)} shipped rule expressions",
        *_cells(ours_s, theirs_s),
        _yes(same),
    ]


def _cells(ours: float, theirs: float) -> list[str]:
    return [f"{ours * 1000:9.1f}", f"{theirs * 1000:9.1f}", f"{ours / theirs:6.2f}x"]


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def load(work: Path, hours: int) -> tuple[Path, Path, int]:
    """The history in our SQLite store and in Prometheus blocks; returns the end time."""
    steps = hours * 3600 // STEP_S
    history = generate(steps)
    print(f"{len(history)} series x {steps} steps", flush=True)
    db = open_database(f"sqlite:///{work / 'codequal.db'}")
    db.migrate()
    ingest(SampleStore(db), history, steps)
    db.dispose()
    om_file, blocks = work / "history.om", work / "prom"
    write_openmetrics(om_file, history, steps)
    command = ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om_file), str(blocks)]
    subprocess.run(command, check=True, capture_output=True)
    om_file.unlink()
    return work / "codequal.db", blocks, START_S + (steps - 1) * STEP_S


def geomean(ratios: list[float]) -> float:
    return math.exp(sum(map(math.log, ratios)) / len(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--range-step", type=int, default=60, help="seconds between points")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-promql-") as tmp:
        work = Path(tmp)
        db_file, blocks, end_s = load(work, args.hours)
        db = open_database(f"sqlite:///{db_file}")
        engine = Engine(TimedSource(SampleStore(db)))  # a fresh store: all reads from SQLite
        with prometheus(blocks, work) as url, httpx.Client(timeout=600) as client:
            rows = run_queries(engine, client, url, end_s, args)
            rows.append(rule_round(engine, client, url, end_s, args.repeat))
        db.dispose()
    print()
    table(rows, ["kind", "query", "ours ms", "prom ms", "ratio", "same"])
    ratios = [float(r[4].rstrip("x")) for r in rows[: 2 * len(QUERIES)]]
    print(
        f"\ngeometric mean of the {len(ratios)} query ratios: {geomean(ratios):.2f}x; "
        f"worst {max(ratios):.2f}x; range queries: 24 h at {args.range_step} s, "
        f"median of {args.repeat} interleaved runs"
    )


if __name__ == "__main__":
    main()
