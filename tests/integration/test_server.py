"""The HTTP server: probes, metrics exposition, request telemetry and traceparent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from codequal.api.app import create_app
from codequal.config import load_settings
from codequal.runtime.process import Runtime
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.stores.logs import LogQuery

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def start(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        state: Runtime = app.state.codequal
        assert state.wait_ready(30), state.startup_error
        yield client


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> FastAPI:
    settings = load_settings(data_dir=tmp_path, database_url=database_url, log_format="json")
    application = create_app(settings)

    @application.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @application.get("/boom")
    def boom() -> None:
        raise RuntimeError("exploded with token=abc123")

    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    yield from start(app)


def test_health_reports_each_dependency_with_status_latency_and_message(
    client: TestClient,
) -> None:
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "healthy"
    assert set(body) == {
        "status",
        "timestamp",
        "version",
        "checks",
        "notificationChannels",
        "replica",
    }
    # One process on its own database leads: it runs the rules and the notifier.
    assert body["replica"]["leader"] is True
    assert body["replica"]["instance"].endswith(":8080")
    channels = body["notificationChannels"]
    assert channels["slack"]["status"] == "disabled"
    assert "CODEQUAL_SLACK_WEBHOOK_URL" in channels["slack"]["message"]
    checks = body["checks"]
    assert set(checks) == {"startup", "database", "vectorDB", "deepWiki", "redis"}
    assert checks["startup"] == {"status": "ok", "latency": None, "message": "started"}
    for name in ("database", "vectorDB", "deepWiki"):
        assert checks[name]["status"] == "ok", checks[name]
        assert checks[name]["latency"] >= 0
    assert "git version" in checks["deepWiki"]["message"]
    assert "0 repository profiles" in checks["vectorDB"]["message"]
    assert checks["redis"] == {
        "status": "disabled",
        "latency": None,
        "message": "CODEQUAL_REDIS_URL is not set",
    }
    assert client.get("/api/monitoring/health").json()["checks"].keys() == checks.keys()


def test_health_is_503_when_the_deepwiki_workspace_is_not_writable(
    tmp_path: Path, database_url: str
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the workspace should be")
    settings = load_settings(
        data_dir=tmp_path, database_url=database_url, deepwiki_dir=blocker / "ws"
    )
    for client in start(create_app(settings)):
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["status"] == "unhealthy"
        assert response.json()["checks"]["deepWiki"]["status"] == "error"


@pytest.mark.redis
def test_redis_check_uses_the_real_server_and_fails_when_unreachable(
    tmp_path: Path, redis_url: str
) -> None:
    good = load_settings(data_dir=tmp_path, redis_url=redis_url)
    for client in start(create_app(good)):
        check = client.get("/health").json()["checks"]["redis"]
        assert check["status"] == "ok" and check["message"] == "PING answered"
    bad = load_settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    for client in start(create_app(bad)):
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["checks"]["redis"]["status"] == "error"


def test_ready_is_200_once_started_and_503_while_shutting_down(
    app: FastAPI, client: TestClient
) -> None:
    assert client.get("/ready").status_code == 200
    assert client.get("/live").json() == {"status": "alive"}
    app.state.codequal.shutting_down = True
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"error": "not ready", "detail": "shutting down"}


def test_metrics_speaks_prometheus_text_and_openmetrics_on_request(client: TestClient) -> None:
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    assert "# TYPE codequal_analysis_duration_seconds histogram" in text.text
    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")


def requests_for(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "codequal_http_requests_total", {"method": "GET", "route": route, "status": status}
    )
    return value or 0.0


def test_requests_are_counted_by_route_template_not_raw_path(client: TestClient) -> None:
    before = requests_for("/items/{item_id}", "200")
    timed_before = (
        REGISTRY.get_sample_value(
            "codequal_http_request_duration_seconds_count",
            {"method": "GET", "route": "/items/{item_id}"},
        )
        or 0.0
    )
    for i in range(3):
        assert client.get(f"/items/{i}").status_code == 200
    assert requests_for("/items/{item_id}", "200") == before + 3
    assert requests_for("/items/2", "200") == 0
    timed = REGISTRY.get_sample_value(
        "codequal_http_request_duration_seconds_count",
        {"method": "GET", "route": "/items/{item_id}"},
    )
    assert timed == timed_before + 3


def test_unknown_paths_share_one_label_and_get_the_error_shape(client: TestClient) -> None:
    before = requests_for("unmatched", "404")
    response = client.get("/no/such/path/123")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "detail": None}
    client.get("/another/unknown")
    assert requests_for("unmatched", "404") == before + 2


def test_validation_errors_use_the_error_shape(client: TestClient) -> None:
    response = client.get("/items/not-a-number")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "the request is invalid"
    assert body["detail"][0]["field"] == "path.item_id"


def test_traceparent_makes_the_request_part_of_the_callers_trace(
    app: FastAPI, client: TestClient
) -> None:
    header = f"00-{TRACE_ID}-{PARENT_SPAN}-01"
    response = client.get("/items/7", headers={"traceparent": header})
    assert response.headers["x-trace-id"] == TRACE_ID
    telemetry = app.state.codequal.telemetry
    telemetry.flush()
    logged = telemetry.log_store.query(LogQuery(trace_id=TRACE_ID))
    assert [(e["action"], e["metadata"]["route"]) for e in logged] == [
        ("http request", "/items/{item_id}")
    ]
    spans = telemetry.span_store.trace(TRACE_ID)
    assert [(s.name, s.parent_span_id) for s in spans] == [("GET /items/{item_id}", PARENT_SPAN)]


def test_an_unhandled_error_is_a_500_counted_captured_and_scrubbed(
    app: FastAPI, tmp_path: Path
) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.codequal.wait_ready(30)
        before = requests_for("/boom", "500")
        response = client.get("/boom")
        assert response.status_code == 500
        assert requests_for("/boom", "500") == before + 1
        telemetry = app.state.codequal.telemetry
        telemetry.flush()
        errors = telemetry.log_store.query(LogQuery(level="error", action="exception captured"))
        assert errors and errors[0]["error"]["type"] == "RuntimeError"
        assert "abc123" not in str(errors[0])
