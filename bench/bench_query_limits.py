"""The hostile PromQL query set against a real server holding 2 000 series x 24 h.

Seeds a data dir with bench_rules.py's history (CodeQual's own metric names), starts
`codequal serve` with its default query limits (except a shorter CODEQUAL_QUERY_TIMEOUT, so
the run ends in minutes), then sends each hostile query with a `monitoring:read` token and
measures how long until it is refused (or answered), while a prober asks for /live and for
the public dashboard every 50 ms and the server's RSS is sampled every 50 ms. Last, a burst
of heavy queries in parallel, and a slow query whose client disconnects (it must stop: the
server's `canceled` count goes up and its CPU goes back to idle).
Targets (issue #19): RSS under 1 GiB above idle, /live p99 under 100 ms.
Run: python bench/bench_query_limits.py [--hours 24] [--data-dir DIR] [--timeout 20s]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import SECRET, serving
from bench_rules import generate
from bench_tsdb import START_S, STEP_S, ingest
from codequal.security import mint_token
from codequal.storage.db import open_database
from codequal.tsdb.store import SampleStore

DEEP = "sum(" * 5000 + "up" + ")" * 5000
CHAIN = "up" + " + up" * 5000
HOSTILE: list[tuple[str, dict[str, str]]] = [
    ("rate(up[1d:1ms])", {}),
    ("rate(codequal_analysis_started_total[1y:1ms])", {}),
    ("5 000 nested sum(", {"query": DEEP}),
    ("5 000 chained +", {"query": CHAIN}),
    ("up with timeout=-1s", {"query": "up", "timeout": "-1s"}),
    ('count_over_time({__name__=~".+"}[1y])', {}),
    ('sum(count_over_time({__name__=~".+"}[1d:10s]))', {}),
    ("max_over_time(sum by (instance) (rate(codequal_http_requests_total[5m]))[1d:5s])", {}),
    ('quantile_over_time(0.5, {__name__=~".+"}[1d:1m])', {}),
    ("topk(5, sum by (le) (rate(codequal_analysis_duration_seconds_bucket[1d:15s])))", {}),
]
RANGE_HOSTILE = [
    ('{__name__=~".+"} at 1 s steps over 24 h', '{__name__=~".+"}', 1),
    ('{__name__=~".+"} at 8 s steps over 24 h', '{__name__=~".+"}', 8),
    ("rate(codequal_errors_total[5m]) at 8 s over 24 h", "rate(codequal_errors_total[5m])", 8),
]


class Probe:
    """Latencies of /live and the public dashboard, and the server's peak RSS, meanwhile."""

    def __init__(self, base: str, process: psutil.Process) -> None:
        self.base, self.process = base, process
        self.live: list[float] = []
        self.dashboard: list[float] = []
        self.peak_rss = 0
        self.overall_peak = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._ask, args=("/live", self.live), daemon=True),
            threading.Thread(
                target=self._ask,
                args=("/api/monitoring/public/dashboard", self.dashboard),
                daemon=True,
            ),
            threading.Thread(target=self._rss, daemon=True),
        ]

    def __enter__(self) -> Probe:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _ask(self, path: str, out: list[float]) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.wait(0.05):
                started = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    client.get(self.base + path)
                out.append(time.perf_counter() - started)

    def _rss(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)


def seed(data: Path, hours: int) -> int:
    steps = hours * 3600 // STEP_S
    db = open_database(f"sqlite:///{data / 'codequal.db'}")
    db.migrate()
    history = generate(steps)
    ingest(SampleStore(db), history, steps)
    db.dispose()
    print(f"seeded {len(history)} series x {steps} steps", flush=True)
    return START_S + (steps - 1) * STEP_S


def ask(
    client: httpx.Client, base: str, params: dict[str, str], path: str, probe: Probe
) -> list[str]:
    """One query: status, errorType, seconds to the answer, the server's peak RSS meanwhile."""
    probe.peak_rss = 0
    started = time.perf_counter()
    response = client.get(f"{base}/api/v1/{path}", params=params)
    elapsed = time.perf_counter() - started
    body = response.json()
    outcome = body.get("errorType", "answered")
    message = body.get("error", "")[:60]
    peak = probe.peak_rss
    probe.overall_peak = max(probe.overall_peak, peak)
    return [f"{response.status_code}", outcome, f"{elapsed:8.3f}", f"{peak / 2**20:6.0f}", message]


def run_set(base: str, headers: dict[str, str], end_s: int, probe: Probe) -> list[list[str]]:
    rows = []
    with httpx.Client(timeout=600, headers=headers) as client:
        for name, params in HOSTILE:
            query = {"query": name, "time": str(end_s), **params}
            rows.append([name[:60], *ask(client, base, query, "query", probe)])
        for name, query, step in RANGE_HOSTILE:
            params = {"query": query, "start": str(end_s - 86_399), "end": str(end_s)}
            answer = ask(client, base, params | {"step": str(step)}, "query_range", probe)
            rows.append([name[:60], *answer])
    return rows


def burst(base: str, headers: dict[str, str], end_s: int, n: int) -> str:
    """n heavy queries at once: only CODEQUAL_QUERY_MAX_CONCURRENCY run, the rest wait."""
    query = "max_over_time(sum by (instance) (rate(codequal_http_requests_total[5m]))[1d:10s])"
    outcomes: list[str] = []

    def one() -> None:
        with httpx.Client(timeout=600, headers=headers) as client:
            body = client.get(
                f"{base}/api/v1/query", params={"query": query, "time": str(end_s)}
            ).json()
            outcomes.append(body.get("errorType", "answered"))

    started = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    return f"{n} in parallel: {counts} in {time.perf_counter() - started:.1f} s"


def disconnect(base: str, headers: dict[str, str], end_s: int, process: psutil.Process) -> str:
    """A slow query whose client hangs up after 1 s: the server must stop working on it."""
    query = 'sum(quantile_over_time(0.5, {__name__=~".+"}[1d]))'
    before = _canceled(base, headers)
    with contextlib.suppress(httpx.TimeoutException):
        httpx.get(
            f"{base}/api/v1/query",
            params={"query": query, "time": str(end_s)},
            headers=headers,
            timeout=1.0,
        )
    hung_up = time.perf_counter()
    while _canceled(base, headers) == before and time.perf_counter() - hung_up < 60:
        time.sleep(0.05)
    stopped = time.perf_counter() - hung_up
    cpu = process.cpu_percent(interval=1.0)
    return f"client gone after 1 s: cancelled {stopped:.2f} s later; server CPU then {cpu:.0f} %"


def _canceled(base: str, headers: dict[str, str]) -> float:
    text = httpx.get(f"{base}/metrics", headers=headers, timeout=30).text
    found = re.search(
        r'^codequal_promql_queries_refused_total\{error_type="canceled"\} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")


@contextlib.contextmanager
def server(data: Path, timeout: str) -> Iterator[tuple[str, psutil.Process]]:
    with serving(data, CODEQUAL_QUERY_TIMEOUT=timeout) as running:
        yield running.base, running.process


def report(rows: list[list[str]], probe: Probe, idle: int, extra: list[str]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    head = ["hostile query", "HTTP", "errorType", "seconds", "peak RSS MiB", "message"]
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    for line in extra:
        print(line)
    peak = max(probe.overall_peak, probe.peak_rss)
    above = (peak - idle) / 2**20
    print(f"server RSS: idle {idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB "
          f"({above:+.0f} MiB; target < 1024)")  # fmt: skip
    print(f"/live: {len(probe.live)} probes, p50 {p(probe.live, 50):.1f} ms, "
          f"p99 {p(probe.live, 99):.1f} ms (target < 100)")  # fmt: skip
    print(f"public dashboard: {len(probe.dashboard)} probes, p50 {p(probe.dashboard, 50):.1f} ms,"
          f" p99 {p(probe.dashboard, 99):.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--timeout", default="20s", help="CODEQUAL_QUERY_TIMEOUT for the run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        data = args.data_dir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        end_s = START_S + (args.hours * 3600 // STEP_S - 1) * STEP_S
        if not (data / "codequal.db").exists():
            seed(data, args.hours)
        token = mint_token(SECRET, "bench", ["monitoring:read"], 3600)
        headers = {"Authorization": f"Bearer {token}"}
        with server(data, args.timeout) as (base, process):
            time.sleep(20.0)  # start-up work settles: first scrapes, first rule round
            idle = process.memory_info().rss
            with Probe(base, process) as probe:
                rows = run_set(base, headers, end_s, probe)
                extra = [burst(base, headers, end_s, 8), disconnect(base, headers, end_s, process)]
        report(rows, probe, idle, extra)


if __name__ == "__main__":
    main()
