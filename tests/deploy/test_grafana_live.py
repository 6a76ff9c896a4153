"""Every Grafana panel query, live, on both data sources the dashboards can use.

One real ``codequal serve`` runs real analyses (completed ones in each mode, deep mode priced by
a loopback OpenAI-compatible server, a missing ref, an unreachable repository); the real
Prometheus scrapes its /metrics every second and evaluates the rule files CodeQual exports, as
CodeQual's embedded scraper and rule scheduler do. Every panel query (after Grafana's variables
are replaced) then runs at one evaluation time ``T`` on CodeQual's ``/api/v1/query`` and on
Prometheus's: each returns data on both, the same label sets, and values that agree.

Why the two answers may differ at all, and by how much (see ``Kind``): the two scrapers sample
the same process at different moments within each second, and Prometheus's ``rate`` /
``increase`` extrapolate from the first and last sample in the window to the window's edges by
at most 1.1 scrape intervals at each end. So a window function of a counter whose value is the
same at both engines' first and last samples may differ by 2 x 1.1 intervals over the sampled
span, relatively; a raw gauge that no longer moves agrees exactly. To give every analysis
counter the same first sample on both sides, a warm-up round of analyses creates every label
set before the measured round starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import promql_parser as pp
import pytest

from codequal.tsdb.scrape import DEFAULT_JOB
from tests.conftest import TEST_JWT_SECRET, bearer
from tests.deploy.conftest import CODEQUAL
from tests.deploy.test_grafana import Query, grafana_interpolated, queries, selectors
from tests.helpers import eventually
from tests.integration.conftest import CLEAN_APP, COMPLEX, RISKY_APP, commit_files, git
from tests.unit.tsdb.promdata import PROMETHEUS, free_port, need_prometheus

INTERVAL = 1.0  # scrape and rule evaluation interval, on both sides
# Prometheus extrapolates a window function to each edge of the range by at most this much.
EXTRAPOLATION = 1.1 * INTERVAL
HEADERS = bearer("analyses:write", "monitoring:read")
# The workspace lives on tmpfs and a writer fills that volume at a steady rate, so the DeepWiki
# disk forecast panels see a trend the test controls (the root disk moves with every other
# process on the machine, which would make "time until full" a coin toss).
FILL_CHUNK = 1 << 20
FILL_EVERY = 0.25  # seconds
FILL_RATE = FILL_CHUNK / FILL_EVERY  # bytes per second: 4 MiB/s
# Counters get at least this much history after the warm-up round before T: the extrapolation
# tolerance shrinks with it (2 x 1.1 s over 15 s).
MIN_SPAN = 15.0
SHM = Path("/dev/shm")
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, math.inf)

# A known defect of the generated SLO rules, reported rather than fixed here (the generator is
# codequal.analytics.slo): slo:sli_error:ratio_rate5m is errors/total, which is 0/0 = NaN
# whenever the SLO's counters did not move in the window (no traffic: always at a counter's
# birth), and sum_over_time(...[30d]) over one NaN is NaN, so every 30-day SLI, period burn
# rate and budget remaining built on it reads NaN for the next 30 days. Recording the ratio only
# when there is traffic (`/ (sum(rate(total[5m])) > 0)`) would fix it. The test accepts a NaN
# on one side only when that side's own recorded 5-minute history holds the NaN.
POISONED_BY_NO_TRAFFIC = True

# A panel query that has no data in a healthy run, with the reason; asserted empty on both sides.
EMPTY_WHEN_HEALTHY = {
    (
        "slo:period_error_budget_remaining:ratio\n* on (sloth_id, sloth_service, sloth_slo)\n"
        "slo:time_period:days * 86400\n/ on (sloth_id, sloth_service, sloth_slo)\n"
        "(slo:current_burn_rate:ratio > 0)"
    ): (
        "no SLO burns its budget in a healthy run: the round's missing ref and unreachable "
        "repository are the caller's mistakes, rejected rather than failed"
    ),
    "sum by (service) (rate(codequal_errors_total[1m]))": (
        "codequal_errors_total counts exceptions CodeQual captures (bugs); a healthy run has "
        "none, and failed analyses are counted by codequal_analysis_failed_total instead"
    ),
}


class Kind(Enum):
    """How far the two engines' answers to one query may be apart, by what it reads."""

    # Gauges that stopped moving before T, and the SLO constants: the same number.
    STABLE = "stable"
    # Window functions of counters that were quiet at both engines' first and last samples
    # (analyses, costs, agents, DeepWiki errors and cleanups): only the extrapolation differs.
    QUIET_COUNTER = "quiet counter"
    # Recording rules evaluated at each engine's own moments, over quiet counters; the 30-day
    # ones average every evaluation so far, and each side has its own evaluation times.
    SLO_RULE = "slo rule"
    # The SLO-period rules (``slo:sli_error:ratio_rate30d`` and what is built on it) average
    # every 5-minute SLI value the engine has recorded. A 5-minute SLI evaluated while its
    # counters had not moved yet is 0/0 = NaN, and that one NaN makes the 30-day average NaN
    # for 30 days (see POISONED_BY_NO_TRAFFIC); whether an engine evaluated the rule in such a
    # moment depends on where its evaluations fall. Otherwise they agree as SLO_RULE does.
    SLO_PERIOD = "slo period"
    # Counters the test's own traffic and Prometheus's scrapes move (HTTP): a request landing
    # between the two scrapes at either end of the window is seen by one engine only.
    HTTP = "http"
    # histogram_quantile of HTTP latency: one observation more or less moves a quantile
    # within its bucket, or into the next one.
    HTTP_QUANTILE = "http quantile"
    # The process's own CPU and memory, which move all the time; and the first CPU samples
    # differ by the start-up work between CodeQual's first scrape and Prometheus's.
    PROCESS = "process"
    # The filled volume's usage, read up to one interval apart while it grows at FILL_RATE.
    DISK_GAUGE = "disk gauge"
    # Linear fits (deriv, predict_linear) to the filled volume, from different sample sets.
    DISK_TREND = "disk trend"


def kind_of(expr: str) -> Kind:  # noqa: PLR0911 - one return per kind reads best
    names = {s.name or "" for s in selectors(pp.parse(expr))}
    if any(n.startswith("codequal_process_") for n in names):
        return Kind.PROCESS
    if any(n.startswith("codequal_http_") for n in names):
        return Kind.HTTP_QUANTILE if "histogram_quantile" in expr else Kind.HTTP
    if any(n.startswith("codequal_deepwiki_disk_") for n in names):
        return Kind.DISK_TREND if "[" in expr else Kind.DISK_GAUGE
    if names & {"slo:objective:ratio", "slo:time_period:days"} and len(names) == 1:
        return Kind.STABLE
    if names & {"slo:sli_error:ratio_rate30d", "slo:period_burn_rate:ratio",
                 "slo:period_error_budget_remaining:ratio"}:  # fmt: skip
        return Kind.SLO_PERIOD
    if any(n.startswith("slo:") for n in names):
        return Kind.SLO_RULE
    if "[" in expr:
        return Kind.QUIET_COUNTER
    return Kind.STABLE


@dataclass(frozen=True)
class Tolerance:
    rel: float
    abs: float = 0.0

    def allows(self, ours: float, theirs: float) -> bool:
        if math.isnan(ours) or math.isnan(theirs):
            return math.isnan(ours) and math.isnan(theirs)
        if ours == theirs:
            return True
        return abs(ours - theirs) <= self.abs + self.rel * max(abs(ours), abs(theirs))


def tolerance(kind: Kind, span: float, volume_bytes: float) -> Tolerance:  # noqa: PLR0911
    """The allowed difference for ``kind`` when the counters were sampled over ``span`` s."""
    edges = 2 * EXTRAPOLATION / span  # extrapolation at both ends, relative to the span
    if kind is Kind.STABLE:
        return Tolerance(1e-9)
    if kind is Kind.QUIET_COUNTER:
        # A ratio (success rate, a mean, a quantile) has an error from each of its two sides.
        return Tolerance(2 * edges)
    if kind in (Kind.SLO_RULE, Kind.SLO_PERIOD):
        # As counters, plus the 30-day averages weigh each 5-minute value by how many of
        # that side's evaluations saw it: one evaluation more or less at each change.
        return Tolerance(4 * edges)
    if kind is Kind.HTTP:
        # Two requests (one scrape at each end) per second-wide gap, over the span.
        return Tolerance(2 * edges, abs=2 * 2 / span)
    if kind is Kind.PROCESS:
        # Memory: a few percent between two moments a fraction of a second apart. CPU: the
        # process starts scraping itself before it can be scraped; up to two cores for the
        # seconds of start-up in between, over the span.
        return Tolerance(0.05, abs=2 * 3 * INTERVAL / span)
    if kind is Kind.DISK_GAUGE:
        # Two chunks of growth (one interval, plus a chunk of phase) over the volume's size.
        return Tolerance(0.0, abs=2 * FILL_RATE * INTERVAL / volume_bytes)
    if kind is Kind.DISK_TREND:
        # Each side sees the filled volume within one chunk of the line; other tenants of
        # /dev/shm (PostgreSQL's shared memory segments) add a little noise.
        return Tolerance(0.05)
    raise AssertionError(kind)  # HTTP_QUANTILE is compared by bucket


def bucket_index(value: float) -> int:
    return next(i for i, upper in enumerate(HTTP_BUCKETS) if value <= upper)


def agree(kind: Kind, span: float, volume_bytes: float, ours: float, theirs: float) -> bool:
    if kind is Kind.HTTP_QUANTILE:
        if math.isnan(ours) or math.isnan(theirs):
            return math.isnan(ours) and math.isnan(theirs)
        return abs(bucket_index(ours) - bucket_index(theirs)) <= 1
    return tolerance(kind, span, volume_bytes).allows(ours, theirs)


# -- servers ------------------------------------------------------------------------------------
class FakeOpenAI(BaseHTTPRequestHandler):
    """A loopback OpenAI-compatible chat completion, so deep analyses cost something."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Looks risky."},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
        }  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@contextlib.contextmanager
def fake_llm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def filling(volume_dir: Path) -> Iterator[None]:
    """Grow a file on ``volume_dir``'s volume by FILL_CHUNK every FILL_EVERY seconds."""
    stop = threading.Event()
    chunk = b"\0" * FILL_CHUNK

    def fill() -> None:
        with (volume_dir / "filler").open("wb") as out:
            # A steady producer, not a wait for something: the rate is the point.
            while not stop.wait(FILL_EVERY):
                out.write(chunk)
                out.flush()

    thread = threading.Thread(target=fill, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Side:
    """One PromQL HTTP API: CodeQual's (with a bearer token) or Prometheus's."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)

    def query(self, expr: str, t: float | None = None) -> dict[str, Any]:
        params = {"query": expr} | ({} if t is None else {"time": f"{t:.3f}"})
        response = httpx.get(
            f"{self.url}/api/v1/query", params=params, headers=self.headers, timeout=60
        )
        body: dict[str, Any] = response.json()
        assert response.status_code == 200 and body["status"] == "success", (
            f"{self.name}: {expr}: {body}"
        )
        data: dict[str, Any] = body["data"]
        return data

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)["result"]
        return float(result[0]["value"][1]) if result else None


def prometheus_config(port: int, target: str, rule_dir: Path) -> str:
    return (
        f"global:\n  scrape_interval: {INTERVAL:g}s\n  scrape_timeout: {INTERVAL:g}s\n"
        f"  evaluation_interval: {INTERVAL:g}s\n"
        f"rule_files:\n  - {rule_dir}/*.rules.yml\n"  # not alertmanager.yml
        f"scrape_configs:\n  - job_name: {DEFAULT_JOB}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )


def export_rules(out: Path, data_dir: Path) -> list[subprocess.Popen[bytes]]:
    """`codequal rules export` and `codequal slo generate`, started side by side."""
    env = {**os.environ, "CODEQUAL_DATA_DIR": str(data_dir)}
    return [
        subprocess.Popen(
            [*CODEQUAL, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for args in (["rules", "export", "--out", str(out)], ["slo", "generate", "--out", str(out)])
    ]


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"app.py": CLEAN_APP, "requirements.txt": "requests==2.31.0\n"}, "base")
    git(repo, "checkout", "-q", "-b", "feature")
    commit_files(
        repo,
        {
            "app.py": RISKY_APP,
            "requirements.txt": "requests==2.31.0\nflask\n",
            "grading.py": COMPLEX,
        },
        "add a runner",
    )
    git(repo, "checkout", "-q", "main")
    return repo


@dataclass
class Stack:
    codequal: Side
    prometheus: Side
    repo: Path
    unreachable: str  # a repository URL whose clone fails: rejected as unreachable
    volume_bytes: float  # the size of the DeepWiki workspace's (tmpfs) volume

    def analyses(self) -> list[dict[str, str]]:
        """A round: each mode completes, one ref is missing, one clone fails (both rejected)."""
        local = f"file://{self.repo}"
        return [
            {"repositoryUrl": local, "base": "main", "head": "feature", "mode": "quick"},
            {"repositoryUrl": local, "base": "main", "head": "feature", "mode": "deep"},
            {"repositoryUrl": local, "base": "main", "head": "feature", "mode": "comprehensive"},
            {"repositoryUrl": local, "base": "main", "head": "no-such-branch", "mode": "quick"},
            {"repositoryUrl": self.unreachable, "base": "main", "head": "x", "mode": "quick"},
        ]

    def run_round(self, within: float) -> None:
        ids = []
        for body in self.analyses():
            answer = httpx.post(
                f"{self.codequal.url}/api/analyses", json=body, headers=HEADERS, timeout=30
            )
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])

        def finished() -> bool:
            states = [
                httpx.get(
                    f"{self.codequal.url}/api/analyses/{i}", headers=HEADERS, timeout=30
                ).json()["status"]
                for i in ids
            ]
            return all(s in ("completed", "partial", "failed", "rejected") for s in states)

        eventually(finished, within, "the analyses finished")

    def both_see(self, expr: str, value: float, within: float) -> None:
        """Both engines' newest samples show ``expr == value``."""
        for side in (self.codequal, self.prometheus):
            eventually(lambda s=side: s.scalar(expr) == value, within, f"{side.name}: {expr}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    need_prometheus()
    tmp = tmp_path_factory.mktemp("grafana-live")
    if not SHM.is_dir():
        pytest.fail("/dev/shm is missing: the DeepWiki volume needs a tmpfs")
    volume = Path(tempfile.mkdtemp(prefix="codequal-grafana-", dir=SHM))
    rules, port, prom_port = tmp / "rules", free_port(), free_port()
    target = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "CODEQUAL_DATA_DIR": str(tmp / "data"),
        "CODEQUAL_DEEPWIKI_DIR": str(volume / "workspace"),
        "CODEQUAL_HOST": "127.0.0.1",
        "CODEQUAL_PORT": str(port),
        "CODEQUAL_INSTANCE": target,  # what Prometheus puts in `instance`
        "CODEQUAL_JWT_SECRET": TEST_JWT_SECRET,
        "CODEQUAL_SCRAPE_INTERVAL": f"{INTERVAL:g}",
        "CODEQUAL_RULE_INTERVAL": f"{INTERVAL:g}",
        "CODEQUAL_TSDB_FLUSH_INTERVAL": "1",
        "CODEQUAL_LOG_LEVEL": "warn",
        "CODEQUAL_LLM_API_KEY": "sk-test",
        # The repository is a local path, the unreachable one a loopback https URL.
        "CODEQUAL_REPOSITORY_ROOTS": str(tmp),
        "CODEQUAL_ALLOW_PRIVATE_REPOSITORIES": "true",
    }
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, volume, ignore_errors=True)
        cleanup.enter_context(filling(volume))
        env["CODEQUAL_LLM_BASE_URL"] = cleanup.enter_context(fake_llm())
        exporters = export_rules(rules, tmp / "export-data")
        for proc in exporters:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()
        config = tmp / "prometheus.yml"
        config.write_text(prometheus_config(prom_port, target, rules))
        # Prometheus first, so it scrapes from the moment CodeQual listens.
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "prometheus.stderr").open("wb"),
        )
        cleanup.callback(stop_process, prometheus)
        server = subprocess.Popen(
            [*CODEQUAL, "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "codequal.stderr").open("wb"),
        )
        cleanup.callback(stop_process, server)
        codequal = Side("CodeQual", f"http://{target}", HEADERS)
        prom = Side("Prometheus", f"http://127.0.0.1:{prom_port}")

        def ready() -> bool:
            for proc, side in ((server, codequal), (prometheus, prom)):
                assert proc.poll() is None, f"{side.name} exited: see {tmp}/*.stderr"
            with contextlib.suppress(httpx.HTTPError):
                return all(
                    httpx.get(url, timeout=2).status_code == 200
                    for url in (f"{codequal.url}/ready", f"{prom.url}/-/ready")
                )
            return False

        eventually(ready, 90, "codequal serve and prometheus ready")
        unreachable = f"https://127.0.0.1:{free_port()}/gone.git"
        size = shutil.disk_usage(volume).total
        yield Stack(codequal, prom, make_repo(tmp), unreachable, size)


# -- the test -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    query: Query
    expr: str
    kind: Kind
    ours: dict[str, float]
    theirs: dict[str, float]

    def disagreement(self) -> float:
        """The largest relative difference over the label sets both answers have."""
        worst = 0.0
        for key in self.ours.keys() & self.theirs.keys():
            a, b = self.ours[key], self.theirs[key]
            if a == b or (math.isnan(a) and math.isnan(b)):
                continue
            scale = max(abs(a), abs(b))
            worst = max(worst, math.inf if math.isnan(a + b) else abs(a - b) / scale)
        return worst


def no_traffic_nan(side: Side, key: str, t: float) -> bool:
    """Whether ``side`` recorded a NaN 5-minute SLI for the SLO in ``key`` (a label set)."""
    labels = dict(pair.split("=", 1) for pair in key.split(","))
    slo = ", ".join(f'{k}="{labels[k]}"' for k in ("sloth_id", "sloth_service", "sloth_slo"))
    answer = side.query(f"sum_over_time(slo:sli_error:ratio_rate5m{{{slo}}}[1h])", t)["result"]
    return bool(answer) and math.isnan(float(answer[0]["value"][1]))


def few_observations(side: Side, expr: str, key: str, t: float) -> bool:
    """Whether the histogram quantile ``expr`` for ``key`` stands on so few requests that one
    request more or less moves it by more than a bucket.

    The two engines scrape at different moments, so a request landing between their scrapes at
    either end of the window is counted by one of them only. A q-quantile of fewer than
    2 / (1 - q) observations is the slowest one or two of them: one request more or less
    replaces it with whichever is next, in any bucket.
    """
    window = re.search(r"\[([0-9]+[smhd])\]", expr)
    quantile = re.search(r"histogram_quantile\(\s*([0-9.]+)", expr)
    assert window is not None and quantile is not None, expr
    labels = dict(pair.split("=", 1) for pair in key.split(",")) if key else {}
    selector = ", ".join(f'{name}="{value}"' for name, value in labels.items())
    counted = side.query(
        f"sum(increase(codequal_http_request_duration_seconds_count{{{selector}}}[{window[1]}]))",
        t,
    )["result"]
    return bool(counted) and float(counted[0]["value"][1]) < 2 / (1 - float(quantile[1]))


def values(data: dict[str, Any]) -> dict[str, float]:
    """An instant query's answer as {sorted label set: value}."""
    if data["resultType"] == "scalar":
        return {"scalar": float(data["result"][1])}
    return {
        ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items())): float(item["value"][1])
        for item in data["result"]
    }


def compare(stack: Stack, query: Query, t: float) -> Comparison:
    expr = grafana_interpolated(query.expr)
    ours, theirs = stack.codequal.query(expr, t), stack.prometheus.query(expr, t)
    assert ours["resultType"] == theirs["resultType"], f"{query.where}: {expr}"
    return Comparison(query, expr, kind_of(expr), values(ours), values(theirs))


def test_every_panel_query_returns_the_same_data_from_codequal_and_prometheus(
    stack: Stack,
) -> None:
    # The analysis counters exist at zero from the start (every mode and known failure kind):
    # both engines must have sampled that zero before the first analysis moves them, or each
    # starts its history at whatever value its first scrape caught, and `increase` over the
    # series' whole life extrapolates from two different first samples.
    stack.both_see("count(codequal_analysis_started_total == 0)", 4, 30)
    stack.both_see("sum(codequal_deepwiki_cleanups_total)", 0, 30)
    stack.both_see("sum(codequal_agent_execution_seconds_count)", 0, 30)
    stack.both_see("sum(codequal_analysis_cost_dollars_count)", 0, 30)
    # Warm-up: every label set the dashboards read exists, and both engines have sampled it,
    # before the measured round moves the counters.
    stack.run_round(within=120)
    stack.both_see("sum(codequal_analysis_started_total)", 5, 20)
    stack.both_see('max(codequal_deepwiki_analyses{status="rejected"})', 2, 20)
    warm = time.time()
    stack.run_round(within=120)
    stack.both_see('max(codequal_deepwiki_analyses{status="rejected"})', 4, 20)
    stack.both_see("sum(codequal_analysis_started_total)", 10, 20)
    # More history since the warm-up, watched on Prometheus, whose scrapes do not move
    # CodeQual's API counters.
    eventually(lambda: time.time() - warm >= MIN_SPAN, 2 * MIN_SPAN, "history accumulated")
    # T: after both scraped the final state; from here on the test does not call CodeQual
    # until both engines have scraped and evaluated rules past T.
    t = time.time() + INTERVAL
    for side in (stack.prometheus, stack.codequal):
        eventually(
            lambda s=side: (s.scalar("min(timestamp(slo:objective:ratio))") or 0) > t + INTERVAL,
            20,
            f"{side.name} evaluated the rules past T",
        )
    span = t - warm

    compared = [compare(stack, q, t) for q in queries()]
    problems: list[str] = []
    nan_poisoned: list[str] = []
    thin: list[str] = []  # quantiles of a handful of requests, see few_observations
    for c in compared:
        where = f"{c.query.where}: {c.expr!r}"
        if c.expr in EMPTY_WHEN_HEALTHY:
            if c.ours or c.theirs:
                problems.append(f"{where}: expected no data, got {c.ours} / {c.theirs}")
            continue
        if not c.ours or not c.theirs:
            problems.append(f"{where}: no data (CodeQual {c.ours}, Prometheus {c.theirs})")
        elif c.ours.keys() != c.theirs.keys():
            problems.append(f"{where}: label sets differ: {sorted(c.ours)} / {sorted(c.theirs)}")
        for key in c.ours.keys() & c.theirs.keys():
            a, b = c.ours[key], c.theirs[key]
            if c.kind is Kind.SLO_PERIOD and math.isnan(a) != math.isnan(b):
                poisoned = stack.codequal if math.isnan(a) else stack.prometheus
                if no_traffic_nan(poisoned, key, t):
                    nan_poisoned.append(f"{where} {key}: NaN on {poisoned.name}")
                    continue
            if not agree(c.kind, span, stack.volume_bytes, a, b):
                seen = f"{where} [{c.kind.value}] {key}: CodeQual {a!r}, Prometheus {b!r}"
                thin_quantile = c.kind is Kind.HTTP_QUANTILE and few_observations(
                    stack.prometheus, c.expr, key, t
                )
                (thin if thin_quantile else problems).append(seen)
    report = "\n".join(
        f"{c.kind.value:14} {c.disagreement():.2e} {len(c.ours)} {c.query.where}" for c in compared
    )
    print(f"span {span:.1f} s, {len(compared)} queries\n{report}\nNaN-poisoned:", *nan_poisoned)
    print("Quantiles of a handful of requests:", *thin)
    assert not problems, "\n".join(problems)
    assert len(compared) == sum(1 for _ in queries()) > 40
