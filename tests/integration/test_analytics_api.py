"""Costs and insights over real analyses, through the API and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from codequal.analysis.store import AnalysisRequest
from codequal.api.app import create_app
from codequal.config import load_settings

from ..conftest import TEST_JWT_SECRET, bearer
from .conftest import PlantedRepo

READ = bearer("monitoring:read")


def test_costs_and_insights_come_from_the_stored_analyses(
    tmp_path: Path, database_url: str, planted_repo: PlantedRepo
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "srv", database_url=database_url, jwt_secret=TEST_JWT_SECRET
    )
    app = create_app(settings, start_workers=False)
    with TestClient(app, headers=READ) as client:
        assert app.state.codequal.wait_ready(30)
        service = app.state.codequal.analysis
        totals = []
        for mode in ("quick", "comprehensive"):
            analysis_id = service.submit(
                AnalysisRequest(str(planted_repo.path), "main", "feature", mode)
            )
            record = service.pool.run_one(analysis_id)
            totals.append(record.cost_total)
        app.state.codequal.telemetry.flush()
        costs = client.get("/api/monitoring/costs", params={"period": "1d"}).json()
        assert costs["total"] == pytest.approx(sum(totals))
        assert sum(costs["byComponent"].values()) == pytest.approx(costs["total"])
        assert set(costs["byMode"]) == {"quick", "comprehensive"}
        assert costs["perAnalysis"]["analyses"] == 2
        insights = client.get("/api/monitoring/insights", params={"period": "1d"}).json()
        agents = {a["agent"] for a in insights["slowestAgents"]}
        assert {"security", "codeQuality", "performance"} <= agents
        steps = {b["step"] for b in insights["bottlenecks"]}
        assert {"agent security", "clone"} <= steps
        assert insights["knowledgeCache"] == insights["knowledgeCache"] | {
            "lookups": 2, "hits": 1, "misses": 1}  # fmt: skip
        bad = client.get("/api/monitoring/costs", params={"period": "soon"})
        assert bad.status_code == 400 and "like 30m, 24h, 7d" in bad.json()["detail"]
    cli = subprocess.run(
        [sys.executable, "-m", "codequal", "costs", "--since", "1d", "--json",
         "--data-dir", str(tmp_path / "srv")],
        capture_output=True, text=True, timeout=120, check=False,
        env={"CODEQUAL_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert orjson.loads(cli.stdout)["total"] == pytest.approx(sum(totals))
