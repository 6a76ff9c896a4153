"""The analysis pipeline end to end: real git, real agents, real stores and metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from codequal.analysis.service import AnalysisService
from codequal.analysis.store import AnalysisRequest, AnalysisStore
from codequal.api.app import create_app
from codequal.config import Settings, load_settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.storage.db import Database, open_database
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.setup import Telemetry
from codequal.telemetry.stores.logs import LogQuery

from ..conftest import TEST_JWT_SECRET, bearer
from .conftest import PlantedRepo


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", log_format="json")


@pytest.fixture
def telemetry(database: Database, settings: Settings) -> Iterator[Telemetry]:
    tel = setup_telemetry(settings, database, bridge_stdlib=False)
    yield tel
    tel.shutdown(10)


@pytest.fixture
def service(database: Database, telemetry: Telemetry, settings: Settings) -> AnalysisService:
    return build_analysis(settings, database, telemetry)


def analyse(service: AnalysisService, repo: PlantedRepo, mode: str = "quick") -> dict:
    analysis_id = service.submit(AnalysisRequest(str(repo.path), repo.base, repo.head, mode))
    record = service.pool.run_one(analysis_id)
    assert record is not None
    return record.to_report()


QUICK_FINDINGS = [
    ("critical", "app.py", 5, "aws-access-key-id", "security"),
    ("high", "app.py", 13, "B602", "security"),
    ("low", "app.py", 3, "B404", "security"),
]
COMPREHENSIVE_FINDINGS = [
    ("critical", "app.py", 5, "aws-access-key-id", "security"),
    ("high", "app.py", 13, "B602", "security"),
    ("high", "grading.py", 1, "cyclomatic-complexity", "performance"),
    ("high", "pkg/a.py", 1, "import-cycle", "architecture"),
    ("medium", "requirements.txt", 2, "unpinned-dependency", "dependency"),
    ("low", "app.py", 3, "B404", "security"),
]


def exact(report: dict) -> list[tuple]:
    return [
        (f["severity"], f["file"], f["line"], f["rule"], f["agent"]) for f in report["findings"]
    ]


@pytest.mark.parametrize(
    ("mode", "expected"), [("quick", QUICK_FINDINGS), ("comprehensive", COMPREHENSIVE_FINDINGS)]
)
def test_analysis_reports_exactly_the_problems_planted_in_head(
    service: AnalysisService, planted_repo: PlantedRepo, mode: str, expected: list[tuple]
) -> None:
    report = analyse(service, planted_repo, mode)
    assert report["status"] == "completed", report["error"]
    assert report["mode"] == mode
    assert exact(report) == expected
    for finding in report["findings"]:
        assert set(finding) == {"severity", "file", "line", "rule", "message", "agent"}
    assert set(report) >= {"findings", "mode", "status", "timings", "cost"}
    assert report["summary"]["diff"]["changedFiles"] == 6


def test_metrics_spans_logs_and_cost_come_from_the_real_run(
    service: AnalysisService, telemetry: Telemetry, planted_repo: PlantedRepo
) -> None:
    started = sample("codequal_analysis_started_total", mode="quick")
    completed = sample("codequal_analysis_completed_total", mode="quick")
    timed = sample(
        "codequal_analysis_duration_seconds_count",
        mode="quick",
        repository_size="small",
        status="completed",
    )
    report = analyse(service, planted_repo)
    assert sample("codequal_analysis_started_total", mode="quick") == started + 1
    assert sample("codequal_analysis_completed_total", mode="quick") == completed + 1
    assert (
        sample(
            "codequal_analysis_duration_seconds_count",
            mode="quick",
            repository_size="small",
            status="completed",
        )
        == timed + 1
    )
    assert sample("codequal_active_analyses") == 0
    telemetry.flush()
    spans = telemetry.span_store.trace(report["traceId"])
    names = {s.name for s in spans}
    assert {"analyze-pr", "check-vector-db", "clone", "trigger-deepwiki", "agents"} <= names
    assert {"agent security", "agent codeQuality"} <= names
    (root,) = [s for s in spans if s.parent_span_id is None]
    assert root.name == "analyze-pr"
    assert root.attributes["repository.url"] == str(planted_repo.path)
    assert root.attributes["analysis.mode"] == "quick"
    logs = telemetry.log_store.query(LogQuery(trace_id=report["traceId"]))
    assert {"analysis started", "analysis completed"} <= {e["action"] for e in logs}
    cost = report["cost"]
    assert cost["total"] == pytest.approx(sum(cost["components"].values()))
    assert cost["measured"]["analysis"]["cpuSeconds"] > 0
    assert cost["components"]["llm"] == 0.0


def test_workspace_is_removed_after_the_analysis_and_the_cleanup_recorded(
    service: AnalysisService, planted_repo: PlantedRepo
) -> None:
    analyse(service, planted_repo)
    assert service.deepwiki.active_repositories() == 0
    counts, last = service.deepwiki.cleanup_counts()
    assert counts == {"success": 1}
    assert last is not None


def test_second_analysis_reuses_the_fresh_repository_profile(
    service: AnalysisService, planted_repo: PlantedRepo
) -> None:
    first = analyse(service, planted_repo)
    second = analyse(service, planted_repo)
    assert "trigger-deepwiki" in first["timings"]
    assert "trigger-deepwiki" not in second["timings"]
    assert second["summary"]["profile"]["primaryLanguage"] == "Python"


def test_unknown_ref_rejects_the_analysis_with_a_typed_reason_not_a_failure(
    service: AnalysisService, planted_repo: PlantedRepo
) -> None:
    # A ref that does not exist is the caller's mistake: rejected, never a service failure.
    before = sample("codequal_analysis_rejected_total", reason="unknown_ref")
    failed = sample("codequal_analysis_failed_total", mode="quick", error_type="unknown_ref")
    analysis_id = service.submit(
        AnalysisRequest(str(planted_repo.path), "main", "no-such-branch", "quick")
    )
    record = service.pool.run_one(analysis_id)
    assert record is not None and record.status == "rejected"
    assert record.error_type == "unknown_ref"
    assert record.to_report()["reason"] == "unknown_ref"
    assert "no-such-branch" in (record.error_message or "")
    assert sample("codequal_analysis_rejected_total", reason="unknown_ref") == before + 1
    assert (
        sample("codequal_analysis_failed_total", mode="quick", error_type="unknown_ref") == failed
    )


def test_a_job_left_running_by_a_dead_process_is_picked_up_again(
    database: Database, service: AnalysisService, planted_repo: PlantedRepo
) -> None:
    store = AnalysisStore(database)
    analysis_id = store.create(
        AnalysisRequest(str(planted_repo.path), "main", "feature", "quick"), now=1_000.0
    )
    claimed = store.claim("dead-worker", now=1_000.0)
    assert claimed is not None and claimed.status == "running"
    assert store.claim("other", now=1_001.0) is None  # nothing else to take
    assert store.requeue_stale(now=1_010.0, stale_after=30.0) == 0  # still fresh
    assert store.requeue_stale(now=1_100.0, stale_after=30.0) == 1  # heartbeat stopped
    record = service.pool.run_one()
    assert record is not None and record.id == analysis_id
    assert record.status == "completed" and record.attempts == 2


def app_for(tmp_path: Path, database_url: str) -> FastAPI:
    settings = load_settings(
        data_dir=tmp_path / "srv", database_url=database_url, jwt_secret=TEST_JWT_SECRET
    )
    return create_app(settings, start_workers=False)


ALL = bearer("analyses:write", "monitoring:read")


def test_api_accepts_an_analysis_and_serves_its_report(
    tmp_path: Path, database_url: str, planted_repo: PlantedRepo
) -> None:
    app = app_for(tmp_path, database_url)
    with TestClient(app, headers=ALL) as client:
        assert app.state.codequal.wait_ready(30)
        body = {
            "repositoryUrl": f"file://{planted_repo.path}",
            "base": "main",
            "head": "feature",
            "prNumber": 12,
            "mode": "quick",
        }
        response = client.post("/api/analyses", json=body)
        assert response.status_code == 202
        analysis_id = response.json()["id"]
        assert client.get(f"/api/analyses/{analysis_id}").json()["status"] == "queued"
        app.state.codequal.analysis.pool.run_one(analysis_id)
        report = client.get(f"/api/analyses/{analysis_id}").json()
        assert report["status"] == "completed"
        assert report["prNumber"] == 12
        assert any(f["severity"] == "critical" for f in report["findings"])
        listed = client.get("/api/analyses", params={"status": "completed"}).json()
        assert listed["total"] == 1 and listed["items"][0]["id"] == analysis_id
        assert "findings" not in listed["items"][0]
        assert client.get("/api/analyses/nope").status_code == 404


def test_api_rejects_a_bad_repository_and_a_bad_mode_with_clear_errors(
    tmp_path: Path, database_url: str
) -> None:
    app = app_for(tmp_path, database_url)
    with TestClient(app, headers=ALL) as client:
        assert app.state.codequal.wait_ready(30)
        # Outside CODEQUAL_REPOSITORY_ROOTS a path is refused whether or not it exists, and
        # the answer says nothing about this server's files.
        answers = [
            client.post("/api/analyses", json={"repositoryUrl": path, "base": "a", "head": "b"})
            for path in ("/nonexistent-repo-xyz", "/etc", "file:///etc")
        ]
        assert {a.status_code for a in answers} == {400}
        assert len({a.json()["detail"] for a in answers}) == 1
        detail = answers[0].json()["detail"]
        assert "CODEQUAL_REPOSITORY_ROOTS" in detail
        assert not any(word in detail for word in ("exist", "git repository", "/etc"))
        bad_mode = client.post(
            "/api/analyses",
            json={"repositoryUrl": str(tmp_path), "base": "a", "head": "b", "mode": "fast"},
        )
        assert bad_mode.status_code == 422
        assert bad_mode.json()["detail"][0]["field"] == "body.mode"


def test_deepwiki_metrics_are_real_readings(
    tmp_path: Path, database_url: str, planted_repo: PlantedRepo
) -> None:
    app = app_for(tmp_path, database_url)
    with TestClient(app, headers=ALL) as client:
        assert app.state.codequal.wait_ready(30)
        data = client.get("/api/monitoring/deepwiki/metrics").json()
        assert data["codequal_deepwiki_availability"] == 0.0  # workers not started here
        assert 0 < data["codequal_deepwiki_disk_usage_ratio"] < 1
        assert (
            data["codequal_deepwiki_disk_total_bytes"] > data["codequal_deepwiki_disk_used_bytes"]
        )
        text = client.get("/api/monitoring/deepwiki/metrics-prometheus").text
        assert "codequal_deepwiki_active_repositories 0.0" in text
        assert 'codequal_deepwiki_analyses{status="queued"} 0.0' in text
        assert "codequal_deepwiki_disk_usage_ratio" in client.get("/metrics").text


def test_two_workers_never_take_the_same_job(database: Database, tmp_path: Path) -> None:
    """Each worker has its own engine (its own connections), as two server processes would."""
    store = AnalysisStore(database)
    ids = {
        store.create(AnalysisRequest(str(tmp_path), "a", "b", "quick"), now=float(i))
        for i in range(40)
    }
    url = database.engine.url.render_as_string(hide_password=False)
    taken: dict[str, list[str]] = {"w1": [], "w2": []}
    go = threading.Barrier(2)

    def worker(name: str) -> None:
        own = open_database(url)
        try:
            mine = AnalysisStore(own)
            go.wait()
            while (record := mine.claim(name, time.time())) is not None:
                taken[name].append(record.id)
        finally:
            own.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken["w1"] + taken["w2"]) == sorted(ids)
    assert not set(taken["w1"]) & set(taken["w2"])
