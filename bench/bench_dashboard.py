"""Dashboard latency with 100 000 stored analyses and 1 000 000 log entries.

Seeds a SQLite data dir, starts a real `codequal serve`, and measures p50 / p99 of the public
and the authenticated dashboard at 1 and 50 concurrent clients (asyncio + httpx in this
process; the server is its own process). Target: p99 <= 50 ms at 50 clients.
Run: python bench/bench_dashboard.py [--analyses N] [--logs N]
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

import httpx

from codequal.security import mint_token
from codequal.storage.db import open_database

SECRET = "bench-secret-" + "x" * 40
REQUESTS = 1000
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

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--analyses", type=int, default=100_000)
    parser.add_argument("--logs", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        started = time.perf_counter()
        seed(data, args.analyses, args.logs)
        print(f"seeded {args.analyses} analyses, {args.logs} log entries "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        port = free_port()
        env = {**os.environ, "CODEQUAL_DATA_DIR": str(data), "CODEQUAL_JWT_SECRET": SECRET,
               "CODEQUAL_LOG_LEVEL": "warn", "CODEQUAL_LOG_FORMAT": "json"}  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "codequal", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base)
            token = mint_token(SECRET, "bench", ["monitoring:read"], 3600)
            run_table(base, {"Authorization": f"Bearer {token}"})
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


def wrk(url: str, headers: dict[str, str], clients: int) -> tuple[float, float, float] | None:
    """(p50 ms, p99 ms, req/s) from wrk, a C load generator that does not compete with the
    server for the GIL; None when wrk is not installed (apt-get install wrk)."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    args = [binary, f"-t{min(clients, 2)}", f"-c{clients}", "-d10s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    pattern = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", re.M)
    latency = {q: _ms(value, unit) for q, value, unit in pattern.findall(out)}
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rate = float(found.group(1)) if found else float("nan")
    return latency["50"], latency["99"], rate


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_table(base: str, auth: dict[str, str]) -> None:
    print(f"{'endpoint':<36}{'clients':>8}{'client':>10}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for path, headers in (("/api/monitoring/public/dashboard", {}),
                          ("/api/monitoring/dashboard", auth)):  # fmt: skip
        for clients in (1, 50):
            start = time.perf_counter()
            latencies = asyncio.run(load(base + path, headers, clients))
            elapsed = time.perf_counter() - start
            q = statistics.quantiles(latencies, n=100)
            print(f"{path:<36}{clients:>8}{'httpx':>10}{q[49] * 1000:>9.1f}"
                  f"{q[98] * 1000:>9.1f}{len(latencies) / elapsed:>9.0f}")  # fmt: skip
            measured = wrk(base + path, headers, clients)
            if measured is not None:
                p50, p99, rate = measured
                print(f"{path:<36}{clients:>8}{'wrk':>10}{p50:>9.1f}{p99:>9.1f}{rate:>9.0f}")


if __name__ == "__main__":
    main()
