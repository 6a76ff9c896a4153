"""Validate monitoring under production load, on this machine, and write the report.

    .venv/bin/python loadtest/validate.py --minutes 10 --report docs/load-test.md

What it does, with nothing but the local PostgreSQL (a fresh schema in it):

1. starts two ``codequal serve`` replicas on that schema (ports 18081 / 18082), a webhook
   receiver on loopback for their pages, and a small git repository for them to analyse;
2. runs ``loadtest/locustfile.py`` headless against both for ``--minutes`` (dashboard and API
   reads, Loki / OTLP / Sentry ingest, analysis submissions);
3. compares Locust's counts with the increase of CodeQual's own counters summed over both
   replicas: ``codequal_http_requests_total`` by (method, route) and
   ``codequal_ingest_items_total{outcome="accepted"}``: they must agree exactly;
4. records the pages the healthy run caused (there should be none), then injects two faults
   and records which alert paged and how long after the fault: the DeepWiki workspace made
   unusable, then PostgreSQL stopped for 30 s (``--pg-stop`` / ``--pg-start`` commands);
5. writes the figures as Markdown to ``--report``.

Exit status 0 when the counters agree, the healthy run was quiet and both faults paged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from codequal.security import mint_token
from codequal.security.key_store import KeyStore
from codequal.storage import open_database

ROOT = Path(__file__).resolve().parent.parent
PG_VERSION = (
    next(iter(sorted(os.listdir("/etc/postgresql"))), "15")
    if Path("/etc/postgresql").is_dir()
    else "15"
)
PG_CTL = f"pg_ctlcluster --skip-systemctl-redirect {PG_VERSION} main"
SCOPES = ["monitoring:read", "analyses:write", "ingest:write"]
# What Locust counts under each item kind, and the CodeQual counter labels for it.
ITEM_KINDS = {
    "loki_lines": ("loki", "line"),
    "otlp_spans": ("otlp", "span"),
    "sentry_events": ("sentry", "event"),
}


# -- the pieces ----------------------------------------------------------------------------------


@dataclass
class Pager:
    """A webhook receiver (Alertmanager's JSON): each page with the time it arrived."""

    pages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def firing(self, since: float = 0.0) -> list[tuple[float, str, dict[str, str]]]:
        with self.lock:
            return [
                (at, a["labels"].get("alertname", ""), a["labels"])
                for at, page in self.pages
                if at >= since
                for a in page.get("alerts", [])
                if a.get("status") == "firing"
            ]


@contextlib.contextmanager
def pager() -> Iterator[tuple[str, Pager]]:
    found = Pager()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with found.lock:
                found.pages.append((time.time(), json.loads(body or b"{}")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", found
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Replica:
    name: str
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def metrics(self) -> str:
        return httpx.get(f"{self.base}/metrics", timeout=10).text

    def health(self) -> dict[str, Any]:
        try:
            body: dict[str, Any] = httpx.get(f"{self.base}/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body


def start_replica(name: str, port: int, tmp: Path, env: dict[str, str]) -> Replica:
    data_dir = tmp / name
    data_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "codequal", "serve"],
        env={
            **os.environ,
            **env,
            "CODEQUAL_DATA_DIR": str(data_dir),
            "CODEQUAL_PORT": str(port),
            "CODEQUAL_HOST": "127.0.0.1",
            "CODEQUAL_INSTANCE": name,
            "CODEQUAL_LOG_FORMAT": "json",
            # Two replicas on one machine: OTLP/gRPC's 4317 could be bound only once.
            "CODEQUAL_OTLP_GRPC_PORT": "0",
        },
        stdout=(tmp / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    replica = Replica(name, port, data_dir, proc)
    wait_for(lambda: _ready(replica), 90, f"{name} ready")
    return replica


def _ready(replica: Replica) -> bool:
    if replica.proc.poll() is not None:
        raise SystemExit(f"{replica.name} exited; see its log in the work directory")
    try:
        return httpx.get(f"{replica.base}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(check: Callable[[], bool], within: float, what: str) -> float:
    began = time.monotonic()
    while time.monotonic() - began < within:
        if check():
            return time.monotonic() - began
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {within:.0f} s")


def git_repo(path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)

    path.mkdir()
    git("init", "-q", "-b", "main")
    git("config", "user.email", "load@test")
    git("config", "user.name", "load test")
    (path / "app.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    (path / "requirements.txt").write_text("requests==2.31.0\n")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    git("checkout", "-q", "-b", "feature")
    (path / "app.py").write_text(
        "import subprocess\n\n\ndef run(cmd: str) -> int:\n"
        "    return subprocess.run(cmd, shell=True, check=False).returncode\n"
    )
    git("commit", "-q", "-am", "feature")


# -- counters ------------------------------------------------------------------------------------


def counters(replicas: list[Replica]) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    """(requests by (method, route), accepted ingest items by kind), summed over replicas."""
    requests: Counter[tuple[str, str]] = Counter()
    items: Counter[str] = Counter()
    kinds = {v: k for k, v in ITEM_KINDS.items()}
    for replica in replicas:
        for family in text_string_to_metric_families(replica.metrics()):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "codequal_http_requests_total":
                    requests[(labels["method"], labels["route"])] += sample.value
                elif (
                    sample.name == "codequal_ingest_items_total"
                    and labels.get("outcome") == "accepted"
                ):
                    kind = kinds.get((labels.get("format", ""), labels.get("type", "")))
                    if kind is not None:
                        items[kind] += sample.value
    return requests, items


def percentile(histogram: dict[str, int], q: float) -> float:
    """Locust's response_times histogram (rounded ms -> count) at quantile q."""
    points = sorted((float(ms), n) for ms, n in histogram.items())
    total = sum(n for _, n in points)
    if not total:
        return math.nan
    rank, seen = q * total, 0
    for ms, n in points:
        seen += n
        if seen >= rank:
            return ms
    return points[-1][0]


# -- faults --------------------------------------------------------------------------------------


def break_workspace(replica: Replica) -> Callable[[], None]:
    """Make the DeepWiki workspace unusable (a file where the folder must be; a permission
    change would not stop root), and return how to undo it."""
    workspace = replica.data_dir / "deepwiki"
    aside = replica.data_dir / "deepwiki.moved-by-load-test"
    if workspace.exists():
        workspace.rename(aside)
    workspace.write_text("not a directory: the load test's fault injection\n")

    def undo() -> None:
        workspace.unlink()
        if aside.exists():
            aside.rename(workspace)

    return undo


def wait_for_page(
    page: Pager, since: float, wanted: Callable[[str, dict[str, str]], bool], within: float
) -> tuple[float, str] | None:
    end = time.time() + within
    while time.time() < end:
        for at, name, labels in page.firing(since):
            if wanted(name, labels):
                return at - since, name
        time.sleep(1)
    return None


# -- the run -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--user-rps", type=float, default=1.0)
    parser.add_argument("--analyses-per-minute", type=float, default=6.0)
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--pg-stop", default=f"{PG_CTL} stop -m fast")
    parser.add_argument("--pg-start", default=f"{PG_CTL} start")
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="codequal-loadtest-"))
    schema = f"loadtest_{datetime.now(UTC):%Y%m%d%H%M%S}"
    admin = sa.create_engine(args.database_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.database_url}?options=-csearch_path%3D{schema}"
    secret = secrets.token_hex(32)
    git_repo(tmp / "repo")
    report: dict[str, Any] = {"schema": schema, "work_dir": str(tmp)}
    replicas: list[Replica] = []
    try:
        with pager() as (hook_url, page):
            env = {
                "CODEQUAL_DATABASE_URL": url,
                "CODEQUAL_JWT_SECRET": secret,
                "CODEQUAL_WEBHOOK_URL": hook_url,
                "CODEQUAL_TSDB_FLUSH_INTERVAL": "15",
            }
            replicas.append(start_replica("replica-1", free_port(), tmp, env))
            replicas.append(start_replica("replica-2", free_port(), tmp, env))
            report["leaders_at_start"] = leaders(replicas)
            dsn = sentry_dsn(url, replicas[0].port)
            token = mint_token(secret, "loadtest", SCOPES, 4 * 3600)

            report.update(
                run_load(
                    replicas=replicas, page=page, tmp=tmp, args=args, dsn=dsn, token=token, url=url
                )
            )
            if not args.no_faults:
                report["faults"] = inject_faults(replicas, page, args)
            report["leaders_at_end"] = leaders(replicas)
    finally:
        for replica in replicas:
            replica.proc.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                replica.proc.wait(30)
            except subprocess.TimeoutExpired:
                replica.proc.kill()
        with contextlib.suppress(Exception), admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    text = render(report, args)
    print(text)
    if args.report is not None:
        args.report.write_text(text, encoding="utf-8")
    return 0 if verdict(report, args) else 1


def run_load(
    *,
    replicas: list[Replica],
    page: Pager,
    tmp: Path,
    args: argparse.Namespace,
    dsn: str,
    token: str,
    url: str,
) -> dict[str, Any]:
    """Run Locust; return the figures of the healthy run."""
    report: dict[str, Any] = {}
    report["rss_start"] = {r.name: r.rss_mib() for r in replicas}
    before_requests, before_items = counters(replicas)
    run_started = time.time()
    stats_file = tmp / "locust-stats"
    items_file = tmp / "locust-items.json"
    locust = [
        str(Path(sys.executable).with_name("locust")),
        "-f", str(ROOT / "loadtest" / "locustfile.py"),
        "--headless", "--only-summary",
        "--host", replicas[0].base,
        "--hosts", ",".join(r.base for r in replicas),
        "--users", str(args.users), "--spawn-rate", "5",
        "--run-time", f"{int(args.minutes * 60)}s", "--stop-timeout", "10",
        "--user-rps", str(args.user_rps),
        "--analyses-per-minute", str(args.analyses_per_minute),
        "--analysis-repo", f"file://{tmp / 'repo'}",
        "--analysis-base", "main", "--analysis-head", "feature",
        "--sentry-dsn", dsn,
        "--json-file", str(stats_file),
        "--items-json", str(items_file),
    ]  # fmt: skip
    print(f"locust for {args.minutes} min against {len(replicas)} replicas ...")
    subprocess.run(
        locust,
        env={**os.environ, "CODEQUAL_TOKEN": token},
        stdout=(tmp / "locust.log").open("wb"),
        stderr=subprocess.STDOUT,
        check=False,
    )
    report["run_seconds"] = time.time() - run_started
    # Let the last in-flight responses be counted by both sides.
    time.sleep(2)
    after_requests, after_items = counters(replicas)
    report["rss_end"] = {r.name: r.rss_mib() for r in replicas}
    stats_path = stats_file if stats_file.exists() else stats_file.with_suffix(".json")
    stats = json.loads(stats_path.read_text())
    report["endpoints"] = endpoint_rows(stats, before_requests, after_requests)
    locust_items = json.loads(items_file.read_text()) if items_file.exists() else {}
    report["items"] = [
        (kind, int(locust_items.get(kind, 0)), int(after_items[kind] - before_items[kind]))
        for kind in ITEM_KINDS
    ]
    report["analyses_submitted"] = int(locust_items.get("analyses", 0))
    report["healthy_pages"] = [
        (round(at - run_started), name, labels) for at, name, labels in page.firing(run_started)
    ]
    report["analysis_outcomes"] = analysis_outcomes(url)

    return report


def leaders(replicas: list[Replica]) -> list[str]:
    return [r.name for r in replicas if r.health().get("replica", {}).get("leader")]


def sentry_dsn(url: str, port: int) -> str:
    db = open_database(url)
    try:
        _, key = KeyStore(db).create("loadtest", ["ingest:write"], kind="sentry", project_id=1)
    finally:
        db.dispose()
    return f"http://{key}@127.0.0.1:{port}/1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def endpoint_rows(
    stats: list[dict[str, Any]],
    before: Counter[tuple[str, str]],
    after: Counter[tuple[str, str]],
) -> list[dict[str, Any]]:
    rows = []
    for entry in stats:
        method, name = entry["method"], entry["name"]
        if method is None or name == "Aggregated":
            continue
        histogram = entry["response_times"]
        rows.append(
            {
                "method": method,
                "route": name,
                "locust": int(entry["num_requests"]),
                "codequal": int(after[(method, name)] - before[(method, name)]),
                "failures": int(entry["num_failures"]),
                "rps": entry["num_requests"]
                / max(1e-9, entry["last_request_timestamp"] - entry["start_time"]),
                "p50": percentile(histogram, 0.50),
                "p95": percentile(histogram, 0.95),
                "p99": percentile(histogram, 0.99),
            }
        )
    return sorted(rows, key=lambda r: -r["locust"])


def analysis_outcomes(url: str) -> dict[str, int]:
    db = open_database(url)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status, count(*) FROM analyses GROUP BY status"))
            return {str(status): int(n) for status, n in rows}
    finally:
        db.dispose()


def inject_faults(replicas: list[Replica], page: Pager, args: argparse.Namespace) -> list[Any]:
    out = []
    # 1. DeepWiki workspace unusable on every replica: DeepWikiDown (for: 2m) should page.
    began = time.time()
    undo = [break_workspace(r) for r in replicas]
    print("fault 1: DeepWiki workspace unusable ...")
    hit = wait_for_page(page, began, lambda name, _l: name == "DeepWikiDown", 6 * 60)
    for fix in undo:
        fix()
    out.append(("DeepWiki workspace replaced by a file, on both replicas", "DeepWikiDown", hit))

    # 2. PostgreSQL stopped for 30 s: the leader's rules cannot run and it pages about it.
    print("fault 2: PostgreSQL stopped for 30 s ...")
    began = time.time()
    subprocess.run(shlex.split(args.pg_stop), check=True, capture_output=True)
    try:
        time.sleep(30)
    finally:
        subprocess.run(shlex.split(args.pg_start), check=True, capture_output=True)
    hit = wait_for_page(
        page,
        began,
        lambda name, labels: (
            name == "CriticalLogEntry" and labels.get("action") == "alert rules cannot be evaluated"
        ),
        4 * 60,
    )
    recovered = wait_for(
        lambda: (
            all(_ready(r) for r in replicas)
            and sum(bool(r.health().get("replica", {}).get("leader")) for r in replicas) == 1
        ),
        120,
        "both replicas ready with one leader after PostgreSQL came back",
    )
    out.append(("PostgreSQL stopped for 30 s", "CriticalLogEntry", hit))
    out.append(
        ("recovery after PostgreSQL restart", f"ready, one leader in {recovered:.0f} s", None)
    )
    return out


def verdict(report: dict[str, Any], args: argparse.Namespace) -> bool:
    counts_agree = all(r["locust"] == r["codequal"] for r in report["endpoints"]) and all(
        a == b for _, a, b in report["items"]
    )
    quiet = not report["healthy_pages"]
    paged = args.no_faults or all(hit is not None for _, name, hit in report["faults"][:2])
    return counts_agree and quiet and paged


def render(report: dict[str, Any], args: argparse.Namespace) -> str:
    rows = report["endpoints"]
    total = sum(r["locust"] for r in rows)
    failures = sum(r["failures"] for r in rows)
    lines = [
        "| method | route | requests (Locust) | requests (CodeQual) | failures | req/s | p50 ms"
        " | p95 ms | p99 ms |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | `{r['route']}` | {r['locust']} | {r['codequal']} |"
            f" {r['failures']} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p95']:.0f} |"
            f" {r['p99']:.0f} |"
        )
    items = [
        "| item | acknowledged (Locust) | accepted (CodeQual) |",
        "|---|--:|--:|",
        *(f"| {kind} | {a} | {b} |" for kind, a, b in report["items"]),
    ]
    memory = [
        "| replica | RSS at start (MiB) | RSS at end (MiB) |",
        "|---|--:|--:|",
        *(
            f"| {name} | {report['rss_start'][name]:.0f} | {report['rss_end'][name]:.0f} |"
            for name in report["rss_start"]
        ),
    ]
    pages = report["healthy_pages"]
    faults = [
        "| fault | expected page | paged after |",
        "|---|---|---|",
        *(
            f"| {what} | {name} | "
            + ("—" if hit is None and "recovery" in what else
               "**no page**" if hit is None else f"{hit[0]:.0f} s ({hit[1]})")
            + " |"
            for what, name, hit in report.get("faults", [])
        ),
    ]  # fmt: skip
    return "\n".join(
        [
            f"- run: {report['run_seconds'] / 60:.1f} min, {args.users} Locust users at"
            f" {args.user_rps} task/s each, {args.analyses_per_minute} analyses/min,"
            f" against two replicas on PostgreSQL; leader at start: {report['leaders_at_start']},"
            f" at end: {report['leaders_at_end']}",
            f"- requests: {total} in total, {total / report['run_seconds']:.1f} req/s held,"
            f" {failures} failed ({100 * failures / max(1, total):.2f} %)",
            f"- analyses submitted: {report['analyses_submitted']}; stored outcomes:"
            f" {report['analysis_outcomes']}",
            "",
            *lines,
            "",
            *items,
            "",
            *memory,
            "",
            "Pages during the healthy run: "
            + ("none." if not pages else ", ".join(f"{n} at {t} s" for t, n, _ in pages)),
            "",
            *faults,
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
