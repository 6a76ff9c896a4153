"""Zero, not "No data": every shipped Grafana panel query and every SLO query has a value on a
freshly started server that has run a few analyses and had no error.

The server runs as `codequal serve` does (scraper, rule evaluation with the shipped SLO rules,
analysis workers), scraping every second; each panel's PromQL (Grafana's ``$__range`` and
``$__rate_interval`` filled in as Grafana would for a one-hour dashboard) is asked of the
server's own PromQL API, the same engine the rules run on.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from codequal.analytics.slo import load_spec, recording_rules
from codequal.api.app import create_app
from codequal.config import load_settings

from ..conftest import TEST_JWT_SECRET, bearer
from ..helpers import eventually
from .conftest import PlantedRepo

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
GRAFANA_VARIABLES = {"$__range": "1h", "$__rate_interval": "1m", "$__interval": "15s"}
ADMIN = bearer("monitoring:read", "analyses:write")


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard / panel title, PromQL with Grafana's variables filled in) for every target.

    A panel that names what an empty answer means (``noValue``: "never", "not burning") shows
    that, not "No data", so its queries may answer nothing.
    """
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in _panels(json.loads(path.read_text())["panels"]):
            if panel.get("fieldConfig", {}).get("defaults", {}).get("noValue"):
                continue
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if not expr:
                    continue
                for name, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(name, value)
                out.append((f"{path.stem} / {panel['title']}", expr))
    return out


def slo_queries() -> list[tuple[str, str]]:
    """The SLO status queries of the API (errors / total per window) and the recorded ratios."""
    out = []
    for slo in load_spec():
        for rule in recording_rules(slo):
            out.append((f"SLO {slo.name} / {rule['record']}", rule["expr"]))
        out.append((f"SLO {slo.name} / status ratio 1h", slo.error_ratio("1h")))
    return out


@contextlib.contextmanager
def busy_server(tmp: Path) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = int(sock.getsockname()[1])
    settings = load_settings(
        data_dir=tmp,
        jwt_secret=TEST_JWT_SECRET,
        host="127.0.0.1",
        port=port,
        scrape_interval=1.0,
        rule_interval=1.0,
        tsdb_flush_interval=1.0,
        log_format="json",
        log_level="warn",
    )
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert app.state.codequal.wait_ready(60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def has_value(base: str, expr: str) -> bool:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": expr}, headers=ADMIN, timeout=30)
    assert answer.status_code == 200, f"{expr}: {answer.text}"
    data = answer.json()["data"]
    return data["resultType"] == "scalar" or bool(data["result"])


@pytest.mark.timeout(300)
def test_every_panel_and_slo_query_has_a_value_on_a_fresh_server(
    tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    queries = panel_queries() + slo_queries()
    assert len(queries) > 40  # every dashboard was read
    with busy_server(tmp_path) as base:
        body = {"repositoryUrl": f"file://{planted_repo.path}", "base": "main", "head": "feature"}
        ids = [
            httpx.post(f"{base}/api/analyses", json={**body, "mode": mode}, headers=ADMIN)
            .raise_for_status()
            .json()["id"]
            for mode in ("quick", "quick", "comprehensive")
        ]

        def finished() -> bool:
            states = [
                httpx.get(f"{base}/api/analyses/{i}", headers=ADMIN).json()["status"] for i in ids
            ]
            return all(s == "completed" for s in states)

        eventually(finished, 180, "the analyses completed")

        def missing() -> list[str]:
            return [f"{name}: {expr}" for name, expr in queries if not has_value(base, expr)]

        # A few scrapes and rule rounds after the analyses (one a second), every query answers.
        last: list[str] = []

        def all_answer() -> bool:
            last[:] = missing()
            return not last

        with contextlib.suppress(AssertionError):
            eventually(all_answer, 30, "every query has a value")
        assert last == [], "no data:\n" + "\n".join(last)
