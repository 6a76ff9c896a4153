"""The hostile query set against /api/v1: refused fast, in Prometheus's error shape, and a
query whose client went away is cancelled rather than left running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from codequal.alerting.rules import parse_rule_file
from codequal.alerting.scheduler import RuleScheduler
from codequal.api.app import create_app
from codequal.api.prom_api import prom_router
from codequal.config import load_settings
from codequal.storage.db import Database
from codequal.storage.kv import KeyValueStore
from codequal.telemetry.metrics import QUERIES_REFUSED, RULE_EVALUATION_FAILURES
from codequal.tsdb import chunks
from codequal.tsdb.promql import Engine, Matcher, MatchOp
from codequal.tsdb.promql.limits import QueryLimits, TooManySamples
from codequal.tsdb.store import SampleStore, store_for

from ..conftest import TEST_JWT_SECRET, bearer
from .test_tsdb_api import error

READ = bearer("monitoring:read")
T0_S = 1_700_000_000
STEPS = 240  # an hour at 15 s


def make_app(tmp_path: Path, database_url: str) -> FastAPI:
    settings = load_settings(
        data_dir=tmp_path / "srv",
        database_url=database_url,
        jwt_secret=TEST_JWT_SECRET,
        query_max_samples=2000,
        query_timeout="30s",
    )
    app = create_app(settings, start_workers=False)
    if not any(getattr(route, "path", "") == "/api/v1/query" for route in app.routes):
        app.include_router(prom_router(app.state.codequal, app.state.auth.require))
    return app


@pytest.fixture
def app_client(tmp_path: Path, database_url: str) -> Iterator[tuple[FastAPI, TestClient]]:
    app = make_app(tmp_path, database_url)
    with TestClient(app) as client:
        assert app.state.codequal.wait_ready(30)
        store = store_for(app.state.codequal.db)
        store.append(
            ({"__name__": "up", "job": job}, (T0_S + i * 15) * 1000, 1.0)
            for i in range(STEPS)
            for job in ("api", "worker", "db")
        )
        store.flush()
        yield app, client


def query(client: TestClient, **params: str) -> Any:
    params.setdefault("time", str(T0_S + STEPS * 15))
    return client.get("/api/v1/query", params=params, headers=READ)


def refused(error_type: str) -> float:
    return QUERIES_REFUSED.labels(error_type)._value.get()  # type: ignore[no-any-return]


@pytest.mark.parametrize("text", ["rate(up[1d:1ms])", "rate(up[1y:1ms])"])
def test_subqueries_of_millions_of_steps_are_bad_data(
    app_client: tuple[FastAPI, TestClient], text: str
) -> None:
    before = refused("bad_data")
    message = error(query(app_client[1], query=text), 400, "bad_data")
    assert "exceeded maximum resolution of 11,000 points per timeseries" in message
    assert refused("bad_data") == before + 1


def test_five_thousand_nested_sums_are_bad_data(app_client: tuple[FastAPI, TestClient]) -> None:
    text = "sum(" * 5000 + "up" + ")" * 5000
    message = error(query(app_client[1], query=text), 400, "bad_data")
    assert "nested too deeply" in message


def test_a_negative_timeout_is_bad_data(app_client: tuple[FastAPI, TestClient]) -> None:
    message = error(query(app_client[1], query="up", timeout="-1s"), 400, "bad_data")
    assert 'invalid parameter "timeout"' in message
    message = error(query(app_client[1], query="up", timeout="-1"), 400, "bad_data")
    assert "negative" in message


def test_too_many_samples_is_an_execution_error(app_client: tuple[FastAPI, TestClient]) -> None:
    _, client = app_client
    ok = query(client, query="count_over_time(up[30m])")  # 3 x 121 samples: under 2000
    assert ok.status_code == 200, ok.text
    # 3 x 3 601 subquery points: over 2000
    message = error(query(client, query="count_over_time(up[1h:1s])"), 422, "execution")
    assert message == (
        "query processing would load too many samples into memory in query execution"
    )


def test_a_range_query_over_the_point_limit_is_bad_data(
    app_client: tuple[FastAPI, TestClient],
) -> None:
    params = {"query": "up", "start": "0", "end": "110020", "step": "10"}
    response = app_client[1].get("/api/v1/query_range", params=params, headers=READ)
    assert "11,000 points" in error(response, 400, "bad_data")


def test_a_query_whose_client_disconnects_is_cancelled(
    app_client: tuple[FastAPI, TestClient],
) -> None:
    app, client = app_client
    sent: list[dict[str, Any]] = []
    before = refused("canceled")

    async def receive() -> dict[str, Any]:
        if not sent and not received:
            received.append(1)
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}  # the client has gone

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    received: list[int] = []
    text = "max_over_time(up[3h:1s])"  # 10 801 steps: far longer than noticing the disconnect
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/query",
        "raw_path": b"/api/v1/query",
        "root_path": "",
        "query_string": f"query={text}&time={T0_S + STEPS * 15}".encode(),
        "headers": [(b"authorization", READ["Authorization"].encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    assert client.portal is not None
    client.portal.call(app, scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b'"errorType":"canceled"' in body
    assert refused("canceled") == before + 1


def test_a_series_over_the_budget_is_refused_before_its_chunks_are_decoded(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SampleStore(database)
    store.append(
        ({"__name__": "up", "i": str(i)}, t * 15_000, 1.0) for i in range(4) for t in range(1000)
    )
    store.flush()
    decoded: list[bytes] = []
    real_decode = chunks.decode
    monkeypatch.setattr(chunks, "decode", lambda blob: decoded.append(blob) or real_decode(blob))
    with pytest.raises(TooManySamples):  # one series holds 1 000 samples in the window
        Engine(store, limits=QueryLimits(max_samples=900)).instant("up[1d]", 1000 * 15_000)
    assert decoded == []
    # A long window over many series is read a run of series at a time, within the budget.
    runs = store.select_batches([Matcher(MatchOp.EQUAL, "__name__", "up")], 0, 15_000_000, 2500)
    assert [[s.labels.get("i") for s in run] for run in runs] == [["0", "1"], ["2", "3"]]
    engine = Engine(store, limits=QueryLimits(max_samples=2500))
    result = engine.instant("count_over_time(up[1d])", 1000 * 15_000)
    assert [s.value for s in result] == [1000.0] * 4  # type: ignore[union-attr]


def test_a_rule_over_a_query_limit_fails_visibly_and_the_others_still_run(
    database: Database,
) -> None:
    store = SampleStore(database)
    store.append(
        ({"__name__": "up", "job": "api"}, (T0_S + i * 15) * 1000, 1.0) for i in range(STEPS)
    )
    groups = parse_rule_file(
        """
groups:
  - name: hostile
    rules:
      - record: job:up:hourly_samples
        expr: count_over_time(up[1h:1s])
      - record: job:up:sum
        expr: sum(up)
""",
        "limits.rules.yml",
    )
    scheduler = RuleScheduler(
        groups,
        store,
        KeyValueStore(database),
        interval=15,
        on_result=lambda _result: None,
        on_error=lambda exc: pytest.fail(f"the round failed: {exc}"),
        limits=QueryLimits(max_samples=2000),
    )
    failures = RULE_EVALUATION_FAILURES.labels("hostile")
    before = failures._value.get()
    now = T0_S + STEPS * 15
    result = scheduler.evaluate_once(now)
    (state,) = result.state.groups.values()
    assert list(state.errors.values()) == [
        "query processing would load too many samples into memory in query execution"
    ]
    assert [s.labels.name for s in result.samples] == ["job:up:sum"]
    assert failures._value.get() == before + 1
    scheduler.run_round(now + 15)
    assert scheduler.consecutive_failures == 0
    assert failures._value.get() == before + 2
