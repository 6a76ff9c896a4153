"""loadtest/locustfile.py: it loads in Locust, names every request by a real route template,
and runs against a real `codequal serve` without a failure, with CodeQual counting exactly the
requests (and ingested items) Locust made.

Locust monkey-patches the standard library with gevent when imported, so it only ever runs in
a subprocess here; the file is inspected with `ast` in this process.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from codequal.api.app import create_app
from codequal.config import Settings
from tests.deploy.conftest import CODEQUAL, ROOT, run
from tests.helpers import wait_until_ready

LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
USERS = {"DashboardAndApiReader", "TelemetryIngester", "AnalysisSubmitter"}
# The ingest routes of issue 7 (mounted by the ingest router).
INGEST_ROUTES = {
    ("POST", "/loki/api/v1/push"),
    ("POST", "/v1/traces"),
    ("POST", "/v1/logs"),
    ("POST", "/api/{project_id}/envelope/"),
    ("POST", "/api/{project_id}/store/"),
}
# Acknowledged item kinds in the locustfile's summary -> codequal_ingest_items_total labels.
INGEST_ITEMS = {
    "loki_lines": ("loki", "line"),
    "otlp_spans": ("otlp", "span"),
    "sentry_events": ("sentry", "event"),
}
JWT_SECRET = "loadtest-secret-" + "s" * 32
RUN_SECONDS = 8


def openapi_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path template) of every operation in an OpenAPI document."""
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    return openapi_routes(create_app(Settings(data_dir=tmp_path)).openapi())


def test_locust_loads_the_scenario_and_lists_its_users(tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--list"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) >= USERS


def route_constants() -> dict[str, str]:
    tree = ast.parse(LOCUSTFILE.read_text(encoding="utf-8"))
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and node.value.value.startswith("/")
    }


def request_names() -> Iterator[tuple[str, ast.expr | None]]:
    """(HTTP method, the expression naming the request) for every request the file makes,
    outside the ``_get`` helper (whose callers pass the name)."""
    tree = ast.parse(LOCUSTFILE.read_text(encoding="utf-8"))
    helper = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and fn.name == "_get"
        for node in ast.walk(fn)
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if id(node) in helper:
            continue
        func = node.func
        if isinstance(func.value, ast.Attribute) and func.value.attr == "client":
            name = next((k.value for k in node.keywords if k.arg == "name"), None)
            yield func.attr.upper(), name
        elif func.attr == "_get":  # the GET helper: (path, name, **params)
            yield "GET", node.args[1] if len(node.args) > 1 else None


def test_every_request_is_named_by_a_route_template_of_the_app_or_the_ingest_api(
    tmp_path: Path,
) -> None:
    constants = route_constants()
    routes = app_routes(tmp_path) | INGEST_ROUTES
    paths = {path for _, path in routes}
    for name, template in constants.items():
        assert template in paths, f"{name} = {template!r} is no route of CodeQual"
    found = list(request_names())
    assert len(found) >= 5
    for method, expr in found:
        assert isinstance(expr, ast.Name), "name every request with a route constant"
        assert expr.id in constants, f"{expr.id} is not a route constant"
        assert (method, constants[expr.id]) in routes, f"no {method} {constants[expr.id]}"


# -- a real run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadRun:
    stats: dict[tuple[str, str], tuple[int, int]]  # (method, name) -> (requests, failures)
    mounted: set[tuple[str, str]]  # the server's routes, from its OpenAPI document
    items: dict[str, int]  # the locustfile's acknowledged-item summary
    metrics: str  # /metrics after the run
    output: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git_repository(path: Path) -> Path:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=Load", "-c", "user.email=load@example.com", *args],
            cwd=path,
            check=True,
            capture_output=True,
        )

    path.mkdir()
    git("init", "-q", "-b", "main")
    (path / "app.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    git("checkout", "-q", "-b", "feature")
    (path / "app.py").write_text("import subprocess\n\nsubprocess.run('ls', shell=True)\n")
    git("commit", "-q", "-am", "feature")
    return path


def cli_output(env: dict[str, str], *args: str) -> str:
    result = run([*CODEQUAL, *args], env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def read_stats(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """Locust's final statistics (--json-file; the CSV can lag the last requests)."""
    entries = json.loads(path.read_text(encoding="utf-8"))
    return {(e["method"], e["name"]): (e["num_requests"], e["num_failures"]) for e in entries}


@pytest.fixture(scope="module")
def load_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadRun]:
    """`codequal serve` on SQLite, and the scenario run against it for a few seconds."""
    tmp = tmp_path_factory.mktemp("load")
    env = {
        **os.environ,
        "CODEQUAL_DATA_DIR": str(tmp / "data"),
        "CODEQUAL_JWT_SECRET": JWT_SECRET,
        "CODEQUAL_LOG_FORMAT": "json",
        "CODEQUAL_LOG_LEVEL": "warn",
        "CODEQUAL_REPOSITORY_ROOTS": str(tmp),  # the analysed repository is a local path
    }
    dsn = cli_output(env, "keys", "create", "--sentry-dsn", "--name", "loadtest")
    scopes = ["--scope", "monitoring:read", "--scope", "analyses:write", "--scope", "ingest:write"]
    token = cli_output(env, "token", "create", *scopes)
    repo = git_repository(tmp / "repo")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*CODEQUAL, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(base, server, 60)
        options = {
            "--host": base,
            "--users": "6",
            "--spawn-rate": "6",
            "--run-time": f"{RUN_SECONDS}s",
            "--stop-timeout": "10",  # users finish the request in flight: counts stay exact
            "--exit-code-on-error": "0",
            "--json-file": str(tmp / "locust"),
            "--items-json": str(tmp / "items.json"),
            "--user-rps": "3",
            "--analyses-per-minute": "30",
            "--analysis-repo": str(repo),
            "--analysis-base": "main",
            "--analysis-head": "feature",
            "--sentry-dsn": dsn,
        }
        locust = run(
            [
                *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)),
                *("--headless", "--only-summary"),
                *(part for pair in options.items() for part in pair),
            ],
            env={**env, "CODEQUAL_TOKEN": token},
            cwd=tmp,
        )
        assert locust.returncode == 0, locust.stderr
        mounted = openapi_routes(httpx.get(f"{base}/openapi.json", timeout=10).json())
        stats = read_stats(tmp / "locust.json")
        yield LoadRun(
            stats,
            mounted,
            json.loads((tmp / "items.json").read_text()),
            settled_metrics(base, stats, mounted),
            locust.stderr,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def served(metrics: str) -> dict[tuple[str, str], float]:
    """codequal_http_requests_total summed over status, by (method, route)."""
    totals: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics):
        if family.name != "codequal_http_requests":
            continue
        for sample in family.samples:
            if sample.name == "codequal_http_requests_total":
                key = (sample.labels["method"], sample.labels["route"])
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def settled_metrics(
    base: str, stats: dict[tuple[str, str], tuple[int, int]], mounted: set[tuple[str, str]]
) -> str:
    """/metrics once the server has counted every request Locust saw answered (or 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        text = httpx.get(f"{base}/metrics", timeout=10).text
        counted = served(text)
        if time.monotonic() > deadline or all(
            counted.get(key, 0) >= n for key, (n, _) in stats.items() if key in mounted
        ):
            return text
        time.sleep(0.2)


def test_the_scenario_mixes_reads_ingest_and_analyses_without_a_failure(
    load_run: LoadRun,
) -> None:
    stats = load_run.stats
    unknown = set(stats) - load_run.mounted - INGEST_ROUTES
    assert not unknown, f"requests to routes CodeQual does not have: {unknown}"
    failed = {key: v for key, v in stats.items() if key in load_run.mounted and v[1]}
    assert not failed, f"failures (requests, failures): {failed}\n{load_run.output[-3000:]}"
    for key in (
        ("GET", "/api/monitoring/public/dashboard"),
        ("GET", "/api/monitoring/dashboard"),
        ("GET", "/api/analyses"),
        ("POST", "/api/analyses"),
    ):
        assert stats.get(key, (0, 0))[0] > 0, f"no {key} request in {RUN_SECONDS} s"
    assert load_run.items["analyses"] == stats["POST", "/api/analyses"][0]


def test_codequal_counts_exactly_the_requests_locust_made(load_run: LoadRun) -> None:
    counted = served(load_run.metrics)
    for (method, route), (requests, _) in load_run.stats.items():
        if (method, route) not in load_run.mounted:
            continue
        if route == "/ready":  # the test also polled it while waiting for the server
            assert counted[method, route] >= requests
        else:
            assert counted.get((method, route)) == requests, (method, route)


def test_codequal_stores_every_ingested_item_locust_had_acknowledged(load_run: LoadRun) -> None:
    assert load_run.mounted >= INGEST_ROUTES, "codequal serve no longer mounts the ingest routes"
    accepted: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(load_run.metrics):
        for sample in family.samples:
            if sample.name == "codequal_ingest_items_total" and (
                sample.labels["outcome"] == "accepted"
            ):
                accepted[sample.labels["format"], sample.labels["type"]] = sample.value
    for kind, labels in INGEST_ITEMS.items():
        assert load_run.items.get(kind, 0) > 0, f"no {kind} acknowledged"
        assert accepted.get(labels) == load_run.items[kind], kind
