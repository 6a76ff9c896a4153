"""Sustained ingest rates through a real HTTP server: Loki push, Sentry envelopes, OTLP traces.

The server is ``codequal serve`` (request telemetry middleware included) as a subprocess on
127.0.0.1, with a SQLite data dir in a temporary folder. Clients are httpx with keep-alive on
CLIENTS threads in this process, sending request bodies built before the clock starts, so the
figures are the server's: HTTP parsing, auth, rate limiting, decompression, decoding and the
committed write. The Loki figure is compared with a raw ``sqlite3`` executemany of the very rows
the server stores, into the same schema, measured in the same run.

Other processes on the machine slow the wall-clock rates down; the server process's own CPU
seconds per item (user + system, from psutil) hardly move with that contention, so they are
printed next to the rates.

Targets: Loki >= 50 % of raw and >= 4 MB/s of line bytes; Sentry >= 1 000 events/s; OTLP >=
10 000 spans/s. Run: python bench/bench_ingest.py [loki|sentry|otlp ...] (default: all)
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from random import Random

import httpx
import orjson
import psutil
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from codequal.security import mint_token
from codequal.security.key_store import KeyStore
from codequal.storage.db import open_database

SECRET = "bench-secret-" + "s" * 40
CLIENTS = 4
LOKI_PUSHES, LOKI_LINES = 40, 2_000  # 80 000 lines
SENTRY_EVENTS = 4_000
OTLP_REQUESTS, OTLP_SPANS = 60, 512  # the SDK's default batch size
SENTRY_KEYS = 16  # the default per-key rate limit must not be what is measured
SENTRY_CLIENTS = 16  # many SDK instances, each sending one event per request
rng = Random(7)


@dataclass
class Result:
    name: str
    items: int
    seconds: float
    nbytes: int = 0
    cpu: float = 0.0  # server-process CPU seconds (user + system) while the case ran
    client_cpu: float = 0.0  # this process's, sending the requests and reading the answers

    @property
    def cpu_us_per_item(self) -> float:
        return self.cpu / self.items * 1e6

    @property
    def rate(self) -> float:
        return self.items / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / self.seconds / 1e6


# -- the server ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base: str
    process: psutil.Process

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system


@contextmanager
def serving(data_dir: Path, **settings: str) -> Iterator[Server]:
    """``codequal serve`` as its own process: its CPU is not shared with the clients' here.
    ``settings`` are more environment variables (``CODEQUAL_QUERY_TIMEOUT="30s"``)."""
    port = free_port()
    # OTLP/gRPC off unless the caller chose a port: 4317 may be taken on this machine.
    env = {"CODEQUAL_OTLP_GRPC_PORT": "0", **os.environ, "CODEQUAL_DATA_DIR": str(data_dir),
           "CODEQUAL_JWT_SECRET": SECRET, "CODEQUAL_LOG_LEVEL": "warn", **settings}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "codequal", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield Server(base, psutil.Process(proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling another process: there is nothing to wait on
    raise RuntimeError("the server did not become ready")


def blast(
    server: Server, requests: list[tuple[str, bytes, dict[str, str]]], clients: int = CLIENTS
) -> tuple[float, float, float]:
    """Send every request over ``clients`` keep-alive connections; (wall, server CPU, client
    CPU) seconds until all are answered.

    The requests are serialised before the clock starts and sent on plain sockets: a Python
    HTTP client costs more CPU per request than the server does, and would be what is measured.
    """
    port = int(server.base.rsplit(":", 1)[1])
    wire = [http_request(path, body, headers) for path, body, headers in requests]
    shares = [wire[i::clients] for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        client, cpu, start = time.process_time(), server.cpu_seconds(), time.perf_counter()
        list(pool.map(lambda share: send_all(port, share), shares))
        wall = time.perf_counter() - start
        return wall, server.cpu_seconds() - cpu, time.process_time() - client


def http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def send_all(port: int, requests: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb") as reply:
        for request in requests:
            sock.sendall(request)
            status = reply.readline()
            length = 0
            while (line := reply.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            body = reply.read(length)
            assert status.split()[1].startswith(b"2"), (status, body[:300])


# -- Loki --------------------------------------------------------------------------------------
LABELS = {"job": "bench", "env": "prod", "level": "info"}


def loki_lines() -> list[list[str]]:
    """logfmt lines of about 200 bytes, the size of a typical request log line."""
    words = ["checkout", "cart", "payment", "user", "session", "retry", "cache", "db"]
    paths = ["/api/cart", "/api/orders/{id}", "/api/users/{id}/sessions", "/healthz"]
    pushes = []
    for p in range(LOKI_PUSHES):
        lines = []
        for i in range(LOKI_LINES):
            msg = " ".join(rng.choice(words) for _ in range(8))
            lines.append(
                f"ts=2027-01-15T08:00:{i % 60:02d}.{p:03d}Z level=info request_id="
                f"{rng.getrandbits(128):032x} method=GET path={rng.choice(paths)} status=200 "
                f'user=u{i % 97} took={i % 500}ms msg="{msg}"'
            )
        pushes.append(lines)
    return pushes


def loki_request(lines: list[str], t0: int) -> bytes:
    values = [[str(t0 + i), line] for i, line in enumerate(lines)]
    return gzip.compress(orjson.dumps({"streams": [{"stream": LABELS, "values": values}]}), 1)


def bench_loki(server: Server, pushes: list[list[str]]) -> Result:
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json",
               "Content-Encoding": "gzip"}  # fmt: skip
    t0 = time.time_ns()
    requests = [("/loki/api/v1/push", loki_request(lines, t0), headers) for lines in pushes]
    seconds, cpu, client = blast(server, requests)
    n, nbytes = sum(len(lines) for lines in pushes), sum(len(x) for p in pushes for x in p)
    return Result("Loki push, JSON + gzip", n, seconds, nbytes, cpu, client)


def bench_raw_sqlite(tmp: Path, pushes: list[list[str]]) -> Result:
    """The rows the server stores, by sqlite3 executemany, one transaction per push."""
    db = open_database(f"sqlite:///{tmp / 'raw.db'}")
    db.migrate()
    db.dispose()
    metadata = orjson.dumps({"labels": LABELS}).decode()
    batches = [
        [(time.time(), "info", "bench", f"{rng.getrandbits(128):032x}", None, None, line[:500],
          None, None, metadata) for line in lines]
        for lines in pushes
    ]  # fmt: skip
    conn = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sql = ("INSERT INTO log_entries (ts, level, service, trace_id, user_id, repository_url, "
           "action, duration, error, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")  # fmt: skip
    start = time.perf_counter()
    for rows in batches:
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    n = sum(len(lines) for lines in pushes)
    return Result("raw sqlite3 executemany", n, seconds, sum(len(x) for p in pushes for x in p))


# -- Sentry ------------------------------------------------------------------------------------
def sentry_event(i: int) -> bytes:
    frames = [
        {"filename": f"app/module{k}.py", "abs_path": f"/srv/app/module{k}.py",
         "function": f"handler_{k}", "module": f"app.module{k}", "lineno": 10 + k,
         "context_line": f"    result = step_{k}(request, order_id)", "in_app": True}
        for k in range(12)
    ]  # fmt: skip
    event = {
        "event_id": f"{i:032x}",
        "timestamp": time.time(),
        "level": "error",
        "platform": "python",
        "environment": "production",
        "release": "shop@1.0.0",
        "exception": {"values": [{"type": "ValueError", "value": f"order {i} failed",
                                  "stacktrace": {"frames": frames}}]},
        "tags": {"service": "shop", "region": "eu"},
        "user": {"id": f"u{i % 50}"},
        "contexts": {"runtime": {"name": "CPython", "version": "3.11"}},
    }  # fmt: skip
    payload = orjson.dumps(event)
    item = orjson.dumps({"type": "event", "length": len(payload)})
    return gzip.compress(b'{"event_id":"%032x"}\n' % i + item + b"\n" + payload + b"\n", 6)


def bench_sentry(server: Server, data_dir: Path) -> Result:
    db = open_database(f"sqlite:///{data_dir / 'codequal.db'}")
    keys = KeyStore(db)
    tokens = [
        keys.create(f"bench-{k}-{rng.random()}", ["ingest:write"], kind="sentry", project_id=1)[1]
        for k in range(SENTRY_KEYS)
    ]
    db.dispose()
    requests = [
        ("/api/1/envelope/", sentry_event(i),
         {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={tokens[i % SENTRY_KEYS]}",
          "Content-Encoding": "gzip"})
        for i in range(SENTRY_EVENTS)
    ]  # fmt: skip
    seconds, cpu, client = blast(server, requests, SENTRY_CLIENTS)
    name = "Sentry envelopes, 1 event each, gzip"
    return Result(name, SENTRY_EVENTS, seconds, cpu=cpu, client_cpu=client)


# -- OTLP --------------------------------------------------------------------------------------
def otlp_request(r: int) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "bench"
    spans = resource.scope_spans.add().spans
    start = time.time_ns()
    for i in range(OTLP_SPANS):
        span = spans.add(
            trace_id=(r * 1000 + i // 8 + 1).to_bytes(16, "big"),
            span_id=(r * OTLP_SPANS + i + 1).to_bytes(8, "big"),
            name=f"GET /items/{{id}} {i % 8}", kind=2,
            start_time_unix_nano=start, end_time_unix_nano=start + 1_000_000,
        )  # fmt: skip
        span.attributes.add(key="http.route").value.string_value = "/items/{id}"
        span.attributes.add(key="http.status_code").value.int_value = 200
    return gzip.compress(request.SerializeToString(), 1)


def bench_otlp(server: Server) -> Result:
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/x-protobuf",
               "Content-Encoding": "gzip"}  # fmt: skip
    requests = [("/v1/traces", otlp_request(r), headers) for r in range(OTLP_REQUESTS)]
    seconds, cpu, client = blast(server, requests)
    n = OTLP_REQUESTS * OTLP_SPANS
    return Result(
        "OTLP traces, protobuf + gzip (512/request)", n, seconds, cpu=cpu, client_cpu=client
    )


def token() -> str:
    return mint_token(SECRET, "bench", ["ingest:write"], 3600)


# -- report ------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


CASES = ("loki", "sentry", "otlp")


def report(results: dict[str, Result], raw: Result | None) -> None:
    print(f"`codequal serve` subprocess on 127.0.0.1, SQLite; {CLIENTS} connections "
          f"({SENTRY_CLIENTS} for Sentry); {os.cpu_count()} CPUs")  # fmt: skip
    print("server CPU: the server process's user + system CPU per item (moved less than the")
    print("rates by other load on the machine); client CPU: this process's, sending and reading")
    print(f"{'case':<46}{'items/s':>12}{'MB/s':>8}{'server CPU':>14}{'client CPU':>14}   target")
    rows: list[tuple[Result, str, str]] = []
    if (loki := results.get("loki")) is not None and raw is not None:
        ok = loki.rate / raw.rate >= 0.5 and loki.mb_per_s >= 4
        rows += [(loki, "lines", f">= 50 % of raw and >= 4 MB/s: {verdict(ok)}"), (raw, "rows", "")]
    if (sentry := results.get("sentry")) is not None:
        rows.append((sentry, "events", f">= 1000 events/s: {verdict(sentry.rate >= 1000)}"))
    if (otlp := results.get("otlp")) is not None:
        rows.append((otlp, "spans", f">= 10000 spans/s: {verdict(otlp.rate >= 10_000)}"))
    for result, unit, target in rows:
        mb = f"{result.mb_per_s:>8.1f}" if result.nbytes else f"{'':>8}"
        per = f" us/{unit[:-1]}"
        cpu = f"{result.cpu_us_per_item:>8,.0f}{per:<6}" if result.cpu else f"{'':>14}"
        client = result.client_cpu / result.items * 1e6
        cpu += f"{client:>8,.0f}{per:<6}" if result.client_cpu else f"{'':>14}"
        print(f"{result.name:<46}{result.rate:>12,.0f}{mb}{cpu}   {target}".rstrip())
    if loki is not None and raw is not None:
        print(f"{'Loki push / raw executemany':<46}{loki.rate / raw.rate:>12.0%}")


def main(cases: list[str]) -> None:
    unknown = set(cases) - set(CASES)
    if unknown:
        sys.exit(f"unknown case(s) {', '.join(sorted(unknown))}; choose from {', '.join(CASES)}")
    cases = cases or list(CASES)
    pushes = loki_lines() if "loki" in cases else []
    results: dict[str, Result] = {}
    raw = None
    with tempfile.TemporaryDirectory() as tmp:
        if pushes:
            raw = bench_raw_sqlite(Path(tmp), pushes)
        data_dir = Path(tmp) / "srv"
        with serving(data_dir) as server:
            if pushes:
                results["loki"] = bench_loki(server, pushes)
            if "sentry" in cases:
                results["sentry"] = bench_sentry(server, data_dir)
            if "otlp" in cases:
                results["otlp"] = bench_otlp(server)
    report(results, raw)


if __name__ == "__main__":
    main(sys.argv[1:])
