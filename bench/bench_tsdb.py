"""Embedded metric history: ingest rate, bytes per sample, and rule queries vs Prometheus.

2 000 series scraped every 15 s for 24 h (11.5 M samples): 400 counters, 100 histograms
(12 buckets, _sum, _count), 100 byte gauges and 100 ratio gauges. The same history goes into
CodeQual's store (``SampleStore.append``, as the scraper does, on SQLite) and, through an
OpenMetrics file and ``promtool tsdb create-blocks-from openmetrics``, into Debian's
Prometheus. Then the same rule-like queries run on both: as the rule evaluator runs them (an
instant query at the end of the history) and as a 24 h dashboard panel (a range query, one
point a minute). Results are checked to agree within 1e-9.
Run: python bench/bench_tsdb.py [--hours 24] [--range-step 60]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from codequal.storage.db import open_database
from codequal.tsdb.promql import Engine, to_prometheus_json
from codequal.tsdb.store import SampleStore

STEP_S = 15
START_S = 1_700_000_000 - 1_700_000_000 % 7200
BUCKETS = ("0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf")
CDF = (0.02, 0.1, 0.25, 0.5, 0.7, 0.85, 0.93, 0.97, 0.99, 0.995, 0.999, 1.0)
QUERIES = [
    "sum(rate(x_total[5m])) by (mode)",
    "histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m])))",
    "sum(rate(h_sum[5m])) / sum(rate(h_count[5m]))",
    "predict_linear(disk_bytes[1h], 1800)",
    "max_over_time(cpu_ratio[10m]) > 0.5",
]
Series = tuple[dict[str, str], array]  # labels, values (one per step)


# -- the history ------------------------------------------------------------------------------
def generate(steps: int, seed: int = 7) -> list[Series]:
    rng = random.Random(seed)
    out: list[Series] = []
    for m in range(10):
        for i in range(40):
            out.append(
                (
                    {"__name__": "x_total", "mode": f"m{m}", "instance": f"i{i:02}"},
                    _counter(rng, steps),
                )
            )
    for i in range(100):
        out.extend(_histogram(rng, steps, f"i{i:02}"))
    for i in range(100):
        out.append(({"__name__": "disk_bytes", "instance": f"i{i:02}"}, _disk(rng, steps)))
        out.append(({"__name__": "cpu_ratio", "instance": f"i{i:02}"}, _ratio(rng, steps)))
    return out


def _counter(rng: random.Random, steps: int) -> array:
    speed, total, values = rng.randint(0, 6), 0, array("d")
    reset = rng.randrange(steps) if rng.random() < 0.1 else -1
    for i in range(steps):
        total = 0 if i == reset else total + rng.randint(0, speed)
        values.append(float(total))
    return values


def _histogram(rng: random.Random, steps: int, instance: str) -> list[Series]:
    buckets = [array("d") for _ in BUCKETS]
    count, total, sums = 0, 0.0, array("d")
    for _ in range(steps):
        n = rng.randint(0, 8)
        count += n
        total += n * 0.3 + rng.random() * 0.05
        for j, cdf in enumerate(CDF):
            buckets[j].append(float(math.floor(count * cdf)))
        sums.append(total)
    series: list[Series] = [
        ({"__name__": "h_bucket", "instance": instance, "le": le}, b)
        for le, b in zip(BUCKETS, buckets, strict=True)
    ]
    series.append(({"__name__": "h_count", "instance": instance}, buckets[-1]))
    series.append(({"__name__": "h_sum", "instance": instance}, sums))
    return series


def _disk(rng: random.Random, steps: int) -> array:
    used, growth, values = rng.randint(10**9, 10**11), rng.randint(-4, 40) * 4096, array("d")
    for _ in range(steps):
        used += growth + rng.randint(-8, 8) * 4096
        values.append(float(used))
    return values


def _ratio(rng: random.Random, steps: int) -> array:
    level, values = rng.random(), array("d")
    for _ in range(steps):
        level = min(1.0, max(0.0, level + rng.gauss(0, 0.02)))
        values.append(round(level, 4))
    return values


# -- our store -------------------------------------------------------------------------------
def ingest(store: SampleStore, history: list[Series], steps: int) -> tuple[float, float]:
    """Append step by step, as scrapes arrive; flush every 2 h of data. (append s, flush s)"""
    appending = flushing = 0.0
    for i in range(steps):
        t = (START_S + i * STEP_S) * 1000
        batch = [(labels, t, values[i]) for labels, values in history]
        started = time.perf_counter()
        store.append(batch)
        appending += time.perf_counter() - started
        if (i + 1) % 480 == 0 or i == steps - 1:
            started = time.perf_counter()
            store.flush()
            flushing += time.perf_counter() - started
    return appending, flushing


def steady_flush(store: SampleStore, history: list[Series], steps: int) -> float:
    """Seconds for one flush of 2 000 half-full open chunks (the server flushes every 60 s)."""
    for i in range(steps, steps + 240):
        t = (START_S + i * STEP_S) * 1000
        store.append([(labels, t, values[i % steps]) for labels, values in history])
    started = time.perf_counter()
    store.flush()
    return time.perf_counter() - started


def size_report(db_file: Path, samples: int) -> tuple[float, float]:
    conn = sqlite3.connect(db_file)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")  # the open-chunk rewrites leave free pages behind
        blob = conn.execute("SELECT SUM(LENGTH(data)) FROM tsdb_chunks").fetchone()[0]
    finally:
        conn.close()
    return db_file.stat().st_size / samples, blob / samples


# -- Prometheus ------------------------------------------------------------------------------
def write_openmetrics(path: Path, history: list[Series], steps: int) -> None:
    families: dict[str, list[Series]] = {}
    for series in history:
        families.setdefault(series[0]["__name__"], []).append(series)
    types = {"x_total": "counter", "h_bucket": "histogram", "h_count": "histogram"}
    with path.open("w") as out:
        for name, members in families.items():
            out.write(f"# TYPE {name} {types.get(name, 'gauge')}\n")
            for labels, values in members:
                text = ",".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
                head = f"{name}{{{text}}} "
                out.writelines(
                    f"{head}{values[i]!r} {START_S + i * STEP_S}\n" for i in range(steps)
                )
        out.write("# EOF\n")


@contextlib.contextmanager
def prometheus(blocks: Path, workdir: Path) -> Iterator[str]:
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            "/usr/bin/prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={blocks}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=100y",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)  # a starting server: nothing to wait on but its port
        yield url
    finally:
        process.terminate()
        process.wait(30)


class TimedSource:
    """The store, adding up how long its selects take (reading vs evaluating)."""

    def __init__(self, store: SampleStore) -> None:
        self.store, self.seconds = store, 0.0

    def select(self, matchers: Any, start: int, end: int) -> Any:
        started = time.perf_counter()
        try:
            return self.store.select(matchers, start, end)
        finally:
            self.seconds += time.perf_counter() - started


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def timed_ours(source: TimedSource, fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """The median run's total and store-read seconds, and the result."""
    runs, result = [], None
    for _ in range(repeat):
        source.seconds = 0.0
        started = time.perf_counter()
        result = fn()
        runs.append((time.perf_counter() - started, source.seconds))
    total, read = sorted(runs)[len(runs) // 2]
    return total, read, result


def agree(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    def rows(data: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
        out = {}
        for item in data["result"]:
            points = item.get("values") or [item["value"]]
            key = str(sorted(item["metric"].items()))
            out[key] = [(float(t), float(v)) for t, v in points]
        return out

    a, b = rows(ours), rows(theirs)
    if a.keys() != b.keys():
        return False
    return all(
        ta == tb and (va == vb or math.isclose(va, vb, rel_tol=1e-9))
        for key in a
        for (ta, va), (tb, vb) in zip(a[key], b[key], strict=True)
    ) and all(len(a[k]) == len(b[k]) for k in a)


def compare(
    source: TimedSource, url: str, end_s: int, range_step: int, hours: int
) -> list[list[str]]:
    rows = []
    engine = Engine(source)
    with httpx.Client(timeout=300) as client:

        def prom(path: str, **params: Any) -> Any:
            return client.get(f"{url}/api/v1/{path}", params=params).json()["data"]

        for query in QUERIES:
            ours_t, read, ours = timed_ours(
                source, lambda q=query: engine.instant(q, end_s * 1000), 5
            )
            prom_t, theirs = timed(lambda q=query: prom("query", query=q, time=end_s), 5)
            ok = agree(to_prometheus_json(ours), theirs)
            rows.append([f"instant  {query}", *_times(ours_t, read, prom_t), _yes(ok)])
        start_s = end_s - hours * 3600 + 3600
        for query in QUERIES:
            args = (query, start_s * 1000, end_s * 1000, range_step * 1000)
            ours_t, read, ours = timed_ours(source, lambda a=args: engine.range(*a), 1)
            prom_t, theirs = timed(
                lambda q=query: prom(
                    "query_range", query=q, start=start_s, end=end_s, step=range_step
                ),
                3,
            )
            ok = agree(to_prometheus_json(ours), theirs)
            rows.append([f"range    {query}", *_times(ours_t, read, prom_t), _yes(ok)])
    return rows


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _times(ours: float, read: float, theirs: float) -> list[str]:
    return [
        f"{ours * 1000:9.1f}",
        f"{read * 1000:9.1f}",
        f"{theirs * 1000:9.1f}",
        f"{ours / theirs:7.1f}x",
    ]


def table(rows: list[list[str]], head: list[str]) -> None:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def backfill_prometheus(work: Path, history: list[Series], steps: int) -> Path:
    om_file, blocks = work / "history.om", work / "prom"
    write_openmetrics(om_file, history, steps)
    command = ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om_file), str(blocks)]
    made = subprocess.run(command, capture_output=True, text=True, check=False)
    if made.returncode != 0:
        sys.exit(f"promtool failed: {made.stderr[-2000:]}")
    om_file.unlink()  # ~600 MB for 24 h
    return blocks


def print_store_table(
    samples: int, ingest_s: tuple[float, float], sizes: tuple[float, float], flush_s: float
) -> None:
    appending, flushing = ingest_s
    table(
        [
            [
                "samples appended per second (2 000 series, one batch per scrape)",
                f"{samples / appending:,.0f}",
            ],
            [
                "samples per second including the chunk writes",
                f"{samples / (appending + flushing):,.0f}",
            ],
            ["bytes per sample: SQLite file (after VACUUM)", f"{sizes[0]:.2f}"],
            ["bytes per sample: chunk payload", f"{sizes[1]:.2f}"],
            ["one flush of 2 000 open chunks of 240 samples (s)", f"{flush_s:.2f}"],
        ],
        ["embedded history", "value"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--range-step", type=int, default=300, help="seconds between points")
    args = parser.parse_args()
    steps = args.hours * 3600 // STEP_S
    end_s = START_S + (steps - 1) * STEP_S
    started = time.perf_counter()
    history = generate(steps)
    samples = len(history) * steps
    print(f"{len(history)} series x {steps} steps = {samples / 1e6:.1f} M samples", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-tsdb-") as tmp:
        work = Path(tmp)
        db = open_database(f"sqlite:///{work / 'codequal.db'}")
        db.migrate()
        store = SampleStore(db)
        ingest_s = ingest(store, history, steps)
        sizes = size_report(work / "codequal.db", samples)
        source = TimedSource(SampleStore(db))  # a fresh store: everything comes from SQLite
        with prometheus(backfill_prometheus(work, history, steps), work) as url:
            rows = compare(source, url, end_s, args.range_step, args.hours)
        flush_s = steady_flush(store, history, steps)
        db.dispose()
    print()
    print_store_table(samples, ingest_s, sizes, flush_s)
    print()
    head = [
        "query (24 h of history, 2 000 series)",
        "ours ms",
        "of which read",
        "prom ms",
        "ours/prom",
        "same",
    ]
    table(rows, head)
    print(
        f"\ntotal run {time.perf_counter() - started:.0f} s; range queries: one point "
        f"every {args.range_step} s over {args.hours - 1} h"
    )


if __name__ == "__main__":
    main()
