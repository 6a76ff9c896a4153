"""Dashboard polls answered from the cache before routing: the same answer, the same refusals.

The telemetry middleware sends a cached dashboard answer itself. What a client sees must not
change: the bytes and headers the route sends, every refusal the route makes (401, 403, 404,
422, 429), each request counted under its route; only the span is left out for a cache hit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from codequal.security.key_store import KeyStore
from codequal.telemetry.metrics import REGISTRY

from ..conftest import bearer
from .test_monitoring_api import make_app as monitoring_app

PUBLIC = "/api/monitoring/public/dashboard"
PRIVATE = "/api/monitoring/dashboard"
READ = bearer("monitoring:read")
FAILURE_LIMIT = 3


def make_app(tmp_path: Path, database_url: str, **settings: object) -> FastAPI:
    return monitoring_app(
        tmp_path, database_url, auth_failures_per_minute=FAILURE_LIMIT, **settings
    )


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    app = make_app(tmp_path, database_url)
    with TestClient(app) as c:
        assert app.state.codequal.wait_ready(30)
        yield c


def counted(route: str, status: str) -> float:
    labels = {"method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("codequal_http_requests_total", labels) or 0.0


def auth_failures(reason: str) -> float:
    return REGISTRY.get_sample_value("codequal_auth_failures_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize(("path", "headers"), [(PUBLIC, {}), (PRIVATE, READ)])
def test_a_cached_answer_is_the_routes_answer_counted_under_its_route_without_a_span(
    client: TestClient, path: str, headers: dict[str, str]
) -> None:
    before = counted(path, "200")
    computed = client.get(path, headers=headers)
    cached = client.get(path, headers=headers)
    assert computed.status_code == cached.status_code == 200
    assert cached.content == computed.content
    for name in ("content-type", "content-length"):
        assert cached.headers[name] == computed.headers[name]
    assert counted(path, "200") == before + 2
    # The computed answer was traced; the cache hit repeats it and is not.
    assert "x-trace-id" in computed.headers
    assert "x-trace-id" not in cached.headers


def test_each_range_is_cached_on_its_own_and_other_queries_go_to_the_route(
    client: TestClient,
) -> None:
    hour = client.get(PUBLIC, params={"range": "1h"})
    day = client.get(PUBLIC, params={"range": "24h"})
    assert hour.json()["series"]["step"] == 60.0
    assert day.json()["series"]["step"] == 86_400.0 / 60
    cached_day = client.get(PUBLIC, params={"range": "24h"})
    assert "x-trace-id" not in cached_day.headers
    assert cached_day.content == day.content
    bad = client.get(PUBLIC, params={"range": "7d"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "the request is invalid"
    extra = client.get(PUBLIC, params={"range": "24h", "ignored": "1"})
    assert extra.status_code == 200
    assert "x-trace-id" in extra.headers  # not a plain poll: the route answered


def test_a_warm_cache_refuses_exactly_what_the_route_refuses(client: TestClient) -> None:
    assert client.get(PRIVATE, headers=READ).status_code == 200  # the answer is cached now
    before = {reason: auth_failures(reason) for reason in ("missing", "signature", "scope")}
    missing = client.get(PRIVATE)
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthorised"
    wrong = client.get(PRIVATE, headers={"Authorization": READ["Authorization"][:-4] + "AAAA"})
    assert wrong.status_code == 401
    lacking = client.get(PRIVATE, headers=bearer("analyses:write"))
    assert lacking.status_code == 403
    assert "monitoring:read" in lacking.json()["detail"]
    # Each refusal counted once, by the route: the cache lookup counts nothing.
    assert auth_failures("missing") == before["missing"] + 1
    assert auth_failures("signature") == before["signature"] + 1
    assert auth_failures("scope") == before["scope"] + 1
    assert counted(PRIVATE, "401") >= 2


def test_a_client_over_the_failure_limit_is_slowed_and_a_valid_token_still_served(
    client: TestClient,
) -> None:
    assert client.get(PRIVATE, headers=READ).status_code == 200
    forged = {"Authorization": READ["Authorization"][:-4] + "AAAA"}
    for _ in range(FAILURE_LIMIT):
        assert client.get(PRIVATE, headers=forged).status_code == 401
    limited = client.get(PRIVATE, headers=forged)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    # The cached answer and the route alike serve a good token from the same address.
    assert client.get(PRIVATE, headers=READ).status_code == 200


def test_the_turned_off_public_dashboard_is_404_and_the_private_one_still_served(
    tmp_path: Path, database_url: str
) -> None:
    app = make_app(tmp_path, database_url, public_dashboard=False)
    with TestClient(app) as client:
        assert app.state.codequal.wait_ready(30)
        for _ in range(2):
            assert client.get(PUBLIC).status_code == 404
            assert client.get(PRIVATE, headers=READ).status_code == 200


def test_a_service_key_is_checked_by_the_route_on_every_poll(client: TestClient) -> None:
    # A key's check is a database read that also records its last use: the route does both.
    app = client.app
    assert isinstance(app, FastAPI)
    store = KeyStore(app.state.codequal.db)
    record, token = store.create("dashboard-screen", ["monitoring:read"])
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(PRIVATE, headers=READ).status_code == 200  # the answer is cached now
    answers = [client.get(PRIVATE, headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert all("x-trace-id" in a.headers for a in answers)
    used = store.get(record.key_id)
    assert used is not None and used.last_used_at is not None
    store.revoke(record.key_id)
    assert client.get(PRIVATE, headers=headers).status_code == 401
