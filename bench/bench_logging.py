"""One LogEntry through the pipeline (console + store sinks) vs one structlog+orjson line.

Both loggers emit the same call; we time the calling thread only (the pipeline renders and
writes on background threads, which still compete for the GIL and are included in wall time).
Target: ratio <= 1.5x. Run: python bench/bench_logging.py
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import structlog

from codequal.storage.db import open_database
from codequal.telemetry.logging import LogPipeline, build_logger
from codequal.telemetry.sinks.console import ConsoleSink
from codequal.telemetry.sinks.store import StoreSink
from codequal.telemetry.stores.logs import LogStore

CALLS = 20_000
ROUNDS = 5


def raw_logger(devnull: Any) -> Any:
    return structlog.wrap_logger(
        structlog.BytesLogger(devnull),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


def per_call_ns(log: Any) -> tuple[float, float]:
    """(wall ns, caller CPU ns) per call for CALLS calls."""
    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
    for i in range(CALLS):
        log.info("analysis step finished", step="agents", n=i, repository_url="https://x/y")
    return (time.perf_counter_ns() - wall) / CALLS, (time.thread_time_ns() - cpu) / CALLS


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "wb") as devnull:
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        store = LogStore(db)
        pipeline = LogPipeline(
            [ConsoleSink("json", devnull), StoreSink(store)], max_queue=CALLS * 2
        )
        pipeline.start()
        ours = build_logger(pipeline, level="info", service="bench")
        raw = raw_logger(devnull)
        results: dict[str, list[tuple[float, float]]] = {"raw": [], "ours": []}
        for _ in range(ROUNDS):
            results["raw"].append(per_call_ns(raw))
            results["ours"].append(per_call_ns(ours))
            assert pipeline.flush(60), "pipeline did not drain"
        stored = store.count()
        pipeline.close()
        db.dispose()
    report(results, stored)


def row(label: str, wall: float, cpu: float) -> str:
    return f"{label:<44}{wall:>14.0f}{cpu:>14.0f}"


def report(results: dict[str, list[tuple[float, float]]], stored: int) -> None:
    raw = results["raw"]
    ours = results["ours"]
    raw_wall, raw_cpu = statistics.median(w for w, _ in raw), statistics.median(c for _, c in raw)
    our_wall, our_cpu = statistics.median(w for w, _ in ours), statistics.median(c for _, c in ours)
    print(f"{'logger':<44}{'wall ns/call':>14}{'cpu ns/call':>14}")
    print(row("structlog + orjson -> /dev/null (raw)", raw_wall, raw_cpu))
    print(row("codequal pipeline -> console + store", our_wall, our_cpu))
    ratios = f"{our_wall / raw_wall:>13.2f}x{our_cpu / raw_cpu:>13.2f}x"
    print(f"{'ratio (target <= 1.5x)':<44}{ratios}")
    print(f"entries stored by the background writer: {stored} of {CALLS * ROUNDS}")
    print("cpu = the calling thread's own CPU time; wall also counts waiting for the GIL")
    print("while the background writers render and insert the entries.")


if __name__ == "__main__":
    main()
