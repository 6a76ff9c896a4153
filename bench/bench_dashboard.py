"""Dashboard latency with 100 000 stored analyses and 1 000 000 log entries.

Seeds a SQLite data dir, starts a real `codequal serve`, and measures p50 / p99 of the public
and the authenticated dashboard at 1 and 50 concurrent clients (asyncio + httpx in this
process, then wrk when it is installed; the server is its own process). Target: p99 <= 50 ms
at 50 clients.

Other work on a 2-core machine moves the latencies, so each row also reports the server
process's own CPU time per request (user + system, from psutil), which it does not move much:
"server CPU ms/req" is all of it, "net" subtracts what the idle server spends anyway (its
scraper, rule scheduler and workers; measured first, printed above the table).
Run: python bench/bench_dashboard.py [--analyses N] [--logs N] [--data-dir DIR]
(--data-dir keeps the seeded database between runs: it is seeded only when empty.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import httpx
import psutil

from codequal.security import mint_token
from codequal.storage.db import open_database

SECRET = "bench-secret-" + "x" * 40
REQUESTS = 1000
WRK_SECONDS = 10
IDLE_SECONDS = 5.0
KEEPALIVE_SECONDS = 4.0
MODES = ("quick", "comprehensive", "deep")


def seed(data_dir: Path, analyses: int, logs: int) -> None:
    db = open_database(f"sqlite:///{data_dir / 'codequal.db'}")
    db.migrate()
    now = time.time()
    rng = random.Random(1)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        rows = []
        for i in range(analyses):
            finished = now - rng.random() * 30 * 86_400
            started = finished - rng.uniform(5, 400)
            status = "failed" if rng.random() < 0.05 else "completed"
            rows.append((uuid.uuid4().hex, f"https://github.com/org{i % 50}/repo{i % 500}",
                         "main", "feature", "auto", rng.choice(MODES), status,
                         started - 1, started, finished, 1))  # fmt: skip
        cur.executemany(
            "INSERT INTO analyses (id, repository_url, base, head, requested_mode, mode, status,"
            " created_at, started_at, finished_at, attempts) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        batch = 50_000
        for start in range(0, logs, batch):
            cur.executemany(
                "INSERT INTO log_entries (ts, level, service, trace_id, action, metadata)"
                " VALUES (?,?,?,?,?,?)",
                [(now - rng.random() * 86_400, "info", "orchestrator", uuid.uuid4().hex,
                  "analysis step finished", '{"step": "agents"}')
                 for _ in range(min(batch, logs - start))],
            )  # fmt: skip
        raw.commit()
    finally:
        raw.close()
        db.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def load(url: str, headers: dict[str, str], clients: int) -> list[float]:
    latencies: list[float] = []
    remaining = REQUESTS

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()

    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them, so a
    # slow client never sends on a connection the server is closing (a ReadError, not a result).
    limits = httpx.Limits(max_connections=clients, keepalive_expiry=KEEPALIVE_SECONDS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--analyses", type=int, default=100_000)
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data_dir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        if not (data / "codequal.db").exists():
            started = time.perf_counter()
            seed(data, args.analyses, args.logs)
            print(f"seeded {args.analyses} analyses, {args.logs} log entries "
                  f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        port = free_port()
        env = {**os.environ, "CODEQUAL_DATA_DIR": str(data), "CODEQUAL_JWT_SECRET": SECRET,
               "CODEQUAL_LOG_LEVEL": "warn", "CODEQUAL_LOG_FORMAT": "json",
               "CODEQUAL_OTLP_GRPC_PORT": "0"}  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "codequal", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base)
            token = mint_token(SECRET, "bench", ["monitoring:read"], 3600)
            run_table(base, {"Authorization": f"Bearer {token}"}, psutil.Process(server.pid))
        finally:
            server.terminate()
            server.wait(30)


def wait_ready(base: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not become ready")


class Row(NamedTuple):
    p50_ms: float
    p99_ms: float
    rate: float  # requests per second
    requests: int


def wrk(url: str, headers: dict[str, str], clients: int) -> Row | None:
    """Latencies and counts from wrk, a C load generator that does not compete with the
    server for the GIL; None when wrk is not installed (apt-get install wrk)."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    args = [binary, f"-t{min(clients, 2)}", f"-c{clients}", f"-d{WRK_SECONDS}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    pattern = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", re.M)
    latency = {q: _ms(value, unit) for q, value, unit in pattern.findall(out)}
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rate = float(found.group(1)) if found else float("nan")
    count = re.search(r"(\d+) requests in", out)
    if re.search(r"Non-2xx or 3xx responses", out):
        raise SystemExit(f"wrk saw failed responses from {url}:\n{out}")
    return Row(latency["50"], latency["99"], rate, int(count.group(1)) if count else 0)


def httpx_row(url: str, headers: dict[str, str], clients: int) -> Row:
    start = time.perf_counter()
    latencies = asyncio.run(load(url, headers, clients))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return Row(q[49] * 1000, q[98] * 1000, len(latencies) / elapsed, len(latencies))


def cpu_seconds(server: psutil.Process) -> float:
    times = server.cpu_times()
    return float(times.user + times.system)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def idle_cpu(server: psutil.Process, seconds: float = IDLE_SECONDS) -> float:
    """The server's CPU seconds per second with no requests."""
    cpu = cpu_seconds(server)
    time.sleep(seconds)
    return (cpu_seconds(server) - cpu) / seconds


def run_table(base: str, auth: dict[str, str], server: psutil.Process) -> None:
    time.sleep(IDLE_SECONDS)  # let start-up work (first scrape, first rule round) finish
    idle = idle_cpu(server)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"idle server: {idle * 1000:.1f} ms CPU per second; machine load average {load}")
    print(f"{'endpoint':<36}{'clients':>8}{'client':>8}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}"
          f"{'server CPU ms/req':>19}{'net':>7}")  # fmt: skip
    for path, headers in (("/api/monitoring/public/dashboard", {}),
                          ("/api/monitoring/dashboard", auth)):  # fmt: skip
        for clients in (1, 50):
            for name, run in (("httpx", httpx_row), ("wrk", wrk)):
                cpu, start = cpu_seconds(server), time.perf_counter()
                row = run(base + path, headers, clients)
                if row is None:
                    continue
                used = cpu_seconds(server) - cpu
                background = idle * (time.perf_counter() - start)
                count = max(row.requests, 1)
                print(f"{path:<36}{clients:>8}{name:>8}{row.p50_ms:>9.1f}{row.p99_ms:>9.1f}"
                      f"{row.rate:>9.0f}{used * 1000 / count:>19.3f}"
                      f"{(used - background) * 1000 / count:>7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
