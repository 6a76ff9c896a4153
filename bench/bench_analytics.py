"""Time to compute SLO status, performance insights and cost analytics over 30 days.

SLO status runs ``compute_slo`` over a metric history holding 30 days of the series the SLOs
read (one scrape a minute); insights and costs run ``compute_insights`` / ``compute_costs``
over 100 000 analyses in SQLite spread over 30 days, with cost and timing JSON shaped like
the pipeline's (and their analytics read model, built as migration 0008 backfills it).
Target: each under 1 s. CPU seconds (time.process_time) are printed beside wall seconds:
on a shared machine the wall time includes waiting for a core.
Run: python bench/bench_analytics.py [--analyses N]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from codequal.analysis.stats_store import backfill_stats
from codequal.analytics.reports import compute_insights, compute_slo
from codequal.config import load_settings
from codequal.runtime.wiring import compute_costs_for
from codequal.storage.db import Database, open_database
from codequal.tsdb.store import SampleStore

DAY = 86_400.0
DAYS = 30
TARGET = 1.0
MODES = ("quick", "comprehensive", "deep")
AGENTS = ("security", "codeQuality", "performance", "architecture", "dependencies")
MODELS = (("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-3-5-haiku"))
# Cumulative share of analyses under each bound: 97 % finish within the 300 s SLO.
BUCKETS = {"1.0": 0.0, "5.0": 0.02, "10.0": 0.1, "30.0": 0.4, "60.0": 0.7, "120.0": 0.9,
           "300.0": 0.97, "600.0": 0.995, "+Inf": 1.0}  # fmt: skip


def seed_analyses(db: Database, count: int, now: float) -> None:
    rng = random.Random(1)
    rows = [analysis_row(rng, i, now) for i in range(count)]
    raw = db.engine.raw_connection()
    try:
        raw.cursor().executemany(
            "INSERT INTO analyses (id, repository_url, base, head, requested_mode, mode, status,"
            " created_at, started_at, finished_at, attempts, timings, cost, cost_total, summary)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        raw.commit()
    finally:
        raw.close()
    with db.engine.begin() as conn:
        backfill_stats(conn)


def analysis_row(rng: random.Random, i: int, now: float) -> tuple[Any, ...]:
    finished = now - rng.random() * DAYS * DAY
    timings: dict[str, float] = {"clone": rng.uniform(0.5, 20), "diff": rng.uniform(0.05, 1)}
    timings["check-vector-db"] = rng.uniform(0.001, 0.05)
    if rng.random() < 0.3:
        timings["trigger-deepwiki"] = rng.uniform(10, 120)
    for agent in AGENTS:
        timings[f"agent:{agent}"] = rng.lognormvariate(2, 0.8)
    timings["total"] = sum(timings.values()) + rng.uniform(0.1, 2)
    started = finished - timings["total"]
    provider, model = rng.choice(MODELS)
    tokens_in, tokens_out = rng.randint(2_000, 40_000), rng.randint(200, 3_000)
    llm_cost = (tokens_in * 0.15 + tokens_out * 0.6) / 1e6
    infra, wiki = timings["total"] * 2e-5, timings.get("trigger-deepwiki", 0.0) * 3e-5
    cost = {
        "currency": "USD",
        "total": infra + wiki + llm_cost,
        "components": {"infrastructure": infra, "deepwiki": wiki, "llm": llm_cost},
        "measured": {
            "analysis": {
                "cpuSeconds": timings["total"] * 0.6,
                "memoryGbSeconds": 3.0,
                "diskGbHours": 0.001,
            }
        },
        "llm": {
            "provider": provider,
            "model": model,
            "inputTokens": tokens_in,
            "outputTokens": tokens_out,
            "cost": llm_cost,
            "pricedFromTable": True,
        },
    }
    mode = rng.choice(MODES)
    summary = {"diff": {"autoMode": rng.choice(MODES)},
               "profile": {"sizeClass": rng.choice(("small", "medium", "large"))}}  # fmt: skip
    status = "failed" if rng.random() < 0.03 else "completed"
    return (uuid.uuid4().hex, f"https://github.com/org{i % 50}/repo{i % 500}", "main",
            "feature", "auto", mode, status, started - rng.uniform(0, 30), started, finished,
            1, orjson.dumps(timings).decode(), orjson.dumps(cost).decode(), cost["total"],
            orjson.dumps(summary).decode())  # fmt: skip


def seed_history(store: SampleStore, now: float) -> int:
    """30 days, one scrape a minute, of the counters and histogram the SLOs read."""
    rng = random.Random(2)
    started = failed = requests = errors = 0.0
    buckets = dict.fromkeys(BUCKETS, 0.0)
    samples: list[tuple[dict[str, str], int, float]] = []
    t = now - DAYS * DAY
    while t <= now:
        n = rng.randint(1, 6)
        started += n
        failed += sum(rng.random() < 0.01 for _ in range(n))
        for le, share in BUCKETS.items():
            buckets[le] += n * share
        requests += 120
        errors += rng.random() < 0.05
        ms = round(t * 1000)
        samples += [
            ({"__name__": "codequal_analysis_started_total", "mode": "quick"}, ms, started),
            (
                {
                    "__name__": "codequal_analysis_failed_total",
                    "mode": "quick",
                    "error_type": "timeout",
                },
                ms,
                failed,
            ),
            ({"__name__": "codequal_http_requests_total", "status": "200"}, ms, requests),
            ({"__name__": "codequal_http_requests_total", "status": "500"}, ms, errors),
        ]
        samples += [({"__name__": "codequal_analysis_duration_seconds_bucket", "le": le}, ms, v)
                    for le, v in buckets.items()]  # fmt: skip
        samples.append(({"__name__": "codequal_analysis_duration_seconds_count"}, ms, started))
        t += 60
    store.append(samples)
    store.flush()
    return len(samples)


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one call."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--analyses", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), jwt_secret="bench-" + "x" * 40)
        db = open_database(f"sqlite:///{Path(tmp) / 'codequal.db'}")
        db.migrate()
        now = time.time()
        began = time.perf_counter()
        seed_analyses(db, args.analyses, now)
        samples = seed_history(store := SampleStore(db), now)
        print(f"seeded {args.analyses} analyses and {samples} samples over {DAYS} days "
              f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
        period = DAYS * DAY
        rows = (
            ("SLO status (compute_slo)", lambda: compute_slo(store, now)),
            ("insights (compute_insights)", lambda: compute_insights(db, period, now)),
            ("costs (compute_costs)", lambda: compute_costs_for(settings, db, period, now)),
        )
        print(f"{'computation':<32}{'first s':>9}{'cpu s':>7}{'repeat s':>10}{'cpu s':>7}"
              f"{'target s':>10}  verdict")  # fmt: skip
        for name, fn in rows:
            (first, first_cpu), (again, again_cpu) = timed(fn), timed(fn)
            verdict = "ok" if max(first, again) < TARGET else "OVER"
            print(f"{name:<32}{first:>9.3f}{first_cpu:>7.3f}{again:>10.3f}{again_cpu:>7.3f}"
                  f"{TARGET:>10.1f}  {verdict}")  # fmt: skip
        db.dispose()


if __name__ == "__main__":
    main()
