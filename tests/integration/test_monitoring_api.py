"""/api/monitoring: dashboards, logs, errors, traces, and which routes need which scope."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from codequal.analysis.store import AnalysisRequest
from codequal.api.app import create_app
from codequal.config import load_settings

from ..conftest import TEST_JWT_SECRET, bearer
from .conftest import PlantedRepo

READ = bearer("monitoring:read")
ADMIN = bearer("monitoring:read", "monitoring:admin")
OPEN_ROUTES = {"/health", "/ready", "/live", "/metrics", "/api/monitoring/health",
               "/api/monitoring/public/dashboard", "/docs", "/openapi.json", "/redoc",
               "/docs/oauth2-redirect"}  # fmt: skip


def make_app(tmp_path: Path, database_url: str, **settings: object) -> FastAPI:
    return create_app(
        load_settings(
            data_dir=tmp_path / "srv",
            database_url=database_url,
            jwt_secret=TEST_JWT_SECRET,
            **settings,
        ),
        start_workers=False,
    )


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> FastAPI:
    return make_app(tmp_path, database_url)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        assert app.state.codequal.wait_ready(30)
        yield c


def run(app: FastAPI, repo: PlantedRepo, head: str = "feature", user: str = "alice") -> str:
    service = app.state.codequal.analysis
    analysis_id = service.submit(AnalysisRequest(str(repo.path), "main", head, "quick", 7, user))
    service.pool.run_one(analysis_id)
    app.state.codequal.telemetry.flush()
    return analysis_id


def test_public_dashboard_shows_aggregates_and_nothing_identifying(
    app: FastAPI, client: TestClient, planted_repo: PlantedRepo
) -> None:
    run(app, planted_repo)
    run(app, planted_repo, head="no-such-ref-zebra")
    response = client.get("/api/monitoring/public/dashboard")
    assert response.status_code == 200
    body = response.json()
    # The unknown ref is the caller's mistake: rejected, and not held against the success rate.
    assert body["analyses"]["lastHour"] == {
        "total": 2,
        "completed": 1,
        "partial": 0,
        "failed": 0,
        "rejected": 1,
        "successRate": 1.0,
    }
    assert set(body["p95DurationByMode"]) == {"quick"}
    assert body["deepwiki"]["diskStatus"] in {"ok", "warning", "critical", "emergency"}
    disk = body["deepwiki"]
    assert 0 < disk["diskUsageRatio"] < 1
    # df's Use%: what is used of what the server could use (the root reserve is in neither).
    used, available = disk["usedBytes"], disk["availableBytes"]
    assert disk["diskUsageRatio"] == used / (used + available)
    assert used + available <= disk["totalBytes"]
    assert body["activeAnalyses"] == 0
    assert len(body["series"]["analysesPerMinute"]) == 60
    text = response.text
    for secret in (str(planted_repo.path), "alice", "zebra", "does not exist", "analysis"):
        assert secret not in text


def test_public_dashboard_can_be_turned_off(tmp_path: Path, database_url: str) -> None:
    app = make_app(tmp_path, database_url, public_dashboard=False)
    with TestClient(app) as client:
        assert app.state.codequal.wait_ready(30)
        assert client.get("/api/monitoring/public/dashboard").status_code == 404


def test_dashboard_needs_a_token_and_adds_the_detail(
    app: FastAPI, client: TestClient, planted_repo: PlantedRepo
) -> None:
    run(app, planted_repo, head="no-such-ref")
    assert client.get("/api/monitoring/dashboard").status_code == 401
    assert (
        client.get("/api/monitoring/dashboard", headers=bearer("ingest:write")).status_code == 403
    )
    body = client.get("/api/monitoring/dashboard", headers=READ).json()
    assert body["recentFailures"] == []  # a ref that does not exist is not a service failure
    (rejected,) = body["recentRejected"]
    assert (rejected["status"], rejected["errorType"]) == ("rejected", "unknown_ref")
    assert rejected["repositoryUrl"] == str(planted_repo.path)
    assert body["activeAnalysesDetail"] == []
    assert "analyses" in body and "series" in body
    assert body["firingAlerts"] == []  # nothing evaluated yet: the workers are not started
    assert {s["name"] for s in body["slos"]} == {
        "analysis-success",
        "analysis-latency",
        "api-availability",
    }


def test_logs_filter_by_trace_and_level_with_cursor_paging(
    app: FastAPI, client: TestClient, planted_repo: PlantedRepo
) -> None:
    analysis_id = run(app, planted_repo)
    trace_id = client.get(f"/api/analyses/{analysis_id}", headers=READ).json()["traceId"]
    page = client.get(
        "/api/monitoring/logs", params={"traceId": trace_id, "limit": 1}, headers=READ
    ).json()
    assert len(page["items"]) == 1 and page["nextCursor"] is not None
    rest = client.get(
        "/api/monitoring/logs",
        params={"traceId": trace_id, "cursor": page["nextCursor"]},
        headers=READ,
    ).json()
    actions = [e["action"] for e in page["items"] + rest["items"]]
    assert actions[-1] == "analysis started" and "analysis completed" in actions
    assert all(e["traceId"] == trace_id for e in rest["items"])
    warn = client.get("/api/monitoring/logs", params={"level": "warn"}, headers=READ).json()
    assert all(e["level"] in {"warn", "error", "critical"} for e in warn["items"])


def test_errors_are_listed_scrubbed_and_resolved_only_by_admins(
    app: FastAPI, client: TestClient
) -> None:
    errors = app.state.codequal.telemetry.errors
    for i in range(3):
        try:
            raise ValueError(f"cannot parse row {i} with password=hunter2")
        except ValueError as exc:
            errors.capture_exception(exc, {"api_key": "k-123456789"})
    errors.flush()
    (issue,) = client.get("/api/monitoring/errors", headers=READ).json()["items"]
    assert issue["count"] == 3 and issue["status"] == "unresolved"
    detail = client.get(f"/api/monitoring/errors/{issue['id']}", headers=READ)
    assert "hunter2" not in detail.text and "k-123456789" not in detail.text
    assert detail.json()["sampleEvent"]["type"] == "ValueError"
    url = f"/api/monitoring/errors/{issue['id']}"
    assert client.patch(url, json={"status": "resolved"}, headers=READ).status_code == 403
    resolved = client.patch(url, json={"status": "resolved"}, headers=ADMIN)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert client.patch(url, json={"status": "gone"}, headers=ADMIN).status_code == 422
    assert client.get("/api/monitoring/errors/999999", headers=READ).status_code == 404


def test_trace_endpoints_return_the_analysis_span_tree(
    app: FastAPI, client: TestClient, planted_repo: PlantedRepo
) -> None:
    analysis_id = run(app, planted_repo)
    body = client.get(f"/api/monitoring/analyses/{analysis_id}/trace", headers=READ).json()
    (root,) = body["spans"]
    assert root["name"] == "analyze-pr"
    children = {c["name"] for c in root["children"]}
    assert {"check-vector-db", "clone", "agents"} <= children
    same = client.get(f"/api/monitoring/traces/{body['traceId']}", headers=READ).json()
    assert same == body
    assert client.get("/api/monitoring/traces/" + "0" * 32, headers=READ).status_code == 404


def test_every_route_but_the_open_ones_refuses_a_request_without_a_token(
    app: FastAPI, client: TestClient
) -> None:
    checked = 0
    for path, item in app.openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in item:
            response = client.request(method.upper(), concrete, json={})
            if path in OPEN_ROUTES:
                continue
            checked += 1
            assert response.status_code == 401, (method, path, response.status_code)
            if path.startswith("/api/{project_id}/"):
                continue  # Sentry's endpoints authenticate by the DSN key, not a bearer token
            challenge = response.headers.get("www-authenticate", "")
            assert challenge.startswith("Bearer"), (method, path, challenge)
    assert checked >= 10
