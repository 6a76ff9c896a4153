"""/api/v1: the Prometheus HTTP API over the embedded history (what Grafana talks to)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from codequal.api.app import create_app
from codequal.api.prom_api import prom_router
from codequal.config import load_settings
from codequal.tsdb.store import store_for

from ..conftest import TEST_JWT_SECRET, bearer

READ = bearer("monitoring:read")
T0_S = 1_700_000_000
STEPS = 40


def make_app(tmp_path: Path, database_url: str) -> FastAPI:
    app = create_app(
        load_settings(
            data_dir=tmp_path / "srv", database_url=database_url, jwt_secret=TEST_JWT_SECRET
        ),
        start_workers=False,
    )
    if not any(getattr(route, "path", "") == "/api/v1/query" for route in app.routes):
        app.include_router(prom_router(app.state.codequal, app.state.auth.require))
    return app


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    app = make_app(tmp_path, database_url)
    with TestClient(app) as c:
        assert app.state.codequal.wait_ready(30)
        store = store_for(app.state.codequal.db)
        for i in range(STEPS):
            t = (T0_S + i * 15) * 1000
            store.append(
                [
                    ({"__name__": "jobs_total", "mode": "quick"}, t, float(i * 3)),
                    ({"__name__": "jobs_total", "mode": "deep"}, t, float(i)),
                    ({"__name__": "queue_depth", "zone": "a"}, t, float(i % 4)),
                ]
            )
        yield c


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def error(response: Any, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "errorType", "error"}
    assert (body["status"], body["errorType"]) == ("error", error_type)
    message: str = body["error"]
    return message


def test_instant_query_answers_a_vector_in_prometheus_shape(client: TestClient) -> None:
    t = T0_S + 20 * 15
    params = {"query": "sum by (mode) (rate(jobs_total[1m]))", "time": str(t)}
    data = ok(client.get("/api/v1/query", params=params, headers=READ))
    assert data == {
        "resultType": "vector",
        "result": [
            {"metric": {"mode": "deep"}, "value": [t, "0.06666666666666667"]},
            {"metric": {"mode": "quick"}, "value": [t, "0.2"]},
        ],
    }
    scalar = ok(client.get("/api/v1/query", params={"query": "1 + 1", "time": "1.5"}, headers=READ))
    assert scalar == {"resultType": "scalar", "result": [1.5, "2"]}


def test_range_query_by_form_post_with_rfc3339_times_and_a_duration_step(
    client: TestClient,
) -> None:
    form = {
        "query": 'queue_depth{zone="a"}',
        "start": "2023-11-14T22:13:20Z",  # T0_S
        "end": "2023-11-14T22:15:20Z",
        "step": "1m",
    }
    data = ok(client.post("/api/v1/query_range", data=form, headers=READ))
    assert data == {
        "resultType": "matrix",
        "result": [
            {
                "metric": {"__name__": "queue_depth", "zone": "a"},
                "values": [[T0_S, "0"], [T0_S + 60, "0"], [T0_S + 120, "0"]],
            }
        ],
    }


def test_series_labels_and_label_values(client: TestClient) -> None:
    series = ok(
        client.get(
            "/api/v1/series",
            params=[("match[]", "jobs_total"), ("match[]", '{zone="a"}')],
            headers=READ,
        )
    )
    assert series == [
        {"__name__": "jobs_total", "mode": "deep"},
        {"__name__": "jobs_total", "mode": "quick"},
        {"__name__": "queue_depth", "zone": "a"},
    ]
    assert ok(client.get("/api/v1/labels", headers=READ)) == ["__name__", "mode", "zone"]
    names = ok(client.post("/api/v1/labels", data={"match[]": "queue_depth"}, headers=READ))
    assert names == ["__name__", "zone"]
    values = ok(client.get("/api/v1/label/mode/values", headers=READ))
    assert values == ["deep", "quick"]
    after_the_data = {"start": str(T0_S + 3600)}
    assert ok(client.get("/api/v1/label/mode/values", params=after_the_data, headers=READ)) == []
    assert ok(client.get("/api/v1/status/buildinfo", headers=READ))["version"].startswith("2.")


def test_client_errors_are_bad_data_400_with_prometheus_messages(client: TestClient) -> None:
    def bad(path: str, **params: str) -> str:
        return error(client.get(path, params=params, headers=READ), 400, "bad_data")

    assert bad("/api/v1/query", query="sum(").startswith('invalid parameter "query": ')
    assert bad("/api/v1/query", query="up", time="noon") == (
        'invalid parameter "time": cannot parse "noon" to a valid timestamp'
    )
    assert bad("/api/v1/query_range", query="jobs_total[5m]", start="0", end="60", step="15") == (
        'invalid parameter "query": invalid expression type "range vector" for range query, '
        "must be Scalar or instant Vector"
    )
    assert bad("/api/v1/query_range", query="up", start="0", end="110020", step="10") == (
        "exceeded maximum resolution of 11,000 points per timeseries. "
        "Try decreasing the query resolution (?step=XX)"
    )
    assert bad("/api/v1/series") == "no match[] parameter provided"
    assert bad("/api/v1/label/1bad/values") == 'invalid label name: "1bad"'


def test_evaluation_errors_are_422_and_timeouts_503(client: TestClient) -> None:
    many = {"query": "jobs_total * on() jobs_total", "time": str(T0_S + 60)}
    message = error(client.get("/api/v1/query", params=many, headers=READ), 422, "execution")
    assert "many-to-many matching not allowed" in message
    slow = {"query": "jobs_total", "time": str(T0_S + 60), "timeout": "0s"}
    message = error(client.get("/api/v1/query", params=slow, headers=READ), 503, "timeout")
    assert message == "query timed out in expression evaluation"


def test_the_api_needs_a_monitoring_read_token(client: TestClient) -> None:
    assert client.get("/api/v1/query", params={"query": "1"}).status_code == 401
    wrong = bearer("ingest:write")
    assert client.get("/api/v1/labels", headers=wrong).status_code == 403
