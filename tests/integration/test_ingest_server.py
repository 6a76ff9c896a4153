"""The ingest routes on a real HTTP server, plus the helpers the other test_ingest_* modules use.

``ingest_app`` builds the app exactly as ``codequal serve`` does and adds the ingest router only
if ``create_app`` does not include it yet, so these tests run before and after it is wired in.
``run_server`` serves an app with uvicorn on a loopback port in a thread: sentry-sdk and the
OpenTelemetry exporters need a real HTTP server.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cramjam
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from codequal.api.app import create_app
from codequal.api.auth import build_authenticator
from codequal.api.errors import install_error_handlers
from codequal.api.ingest import ingest_router
from codequal.config import Settings, load_settings
from codequal.ingest.limits import RateLimiter
from codequal.runtime.process import Runtime
from codequal.security.key_store import KeyStore
from codequal.storage.db import open_database
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.stores.spans import SpanStore
from codequal.tsdb.prompb import WriteRequest

from ..conftest import TEST_JWT_SECRET, bearer

INGEST = bearer("ingest:write")
READ = bearer("monitoring:read")
INGEST_PATHS = ("/api/{project_id}/envelope/", "/api/{project_id}/store/", "/v1/traces",
                "/v1/logs", "/loki/api/v1/push")  # fmt: skip


def free_port() -> int:
    """A loopback port nothing listens on now (for a second listener, such as OTLP/gRPC)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def has_ingest_routes(app: FastAPI) -> bool:
    return any(getattr(route, "path", None) == "/loki/api/v1/push" for route in app.routes)


def ingest_settings(
    data_dir: Path, database_url: str, port: int = 8080, **overrides: object
) -> Settings:
    return load_settings(
        data_dir=data_dir,
        database_url=database_url,
        jwt_secret=TEST_JWT_SECRET,
        host="127.0.0.1",
        port=port,
        log_format="json",
        **overrides,
    )


def ingest_app(settings: Settings) -> FastAPI:
    return create_app(settings, start_workers=False)


def bare_ingest_app(settings: Settings, limiter: RateLimiter) -> FastAPI:
    """Only the ingest routes, with an injected rate limiter; the database is migrated here."""
    db = open_database(settings.resolved_database_url)
    db.migrate()
    ready = threading.Event()
    ready.set()
    app = FastAPI()
    install_error_handlers(app)
    auth = build_authenticator(settings, db)
    auth.install(app)
    app.include_router(ingest_router(db, ready, auth, limiter=limiter))
    app.state.db = db  # disposed by the test
    return app


@dataclass
class Server:
    base: str
    port: int
    app: FastAPI
    settings: Settings

    @property
    def state(self) -> Runtime:
        state: Runtime = self.app.state.codequal
        return state

    def sentry_dsn(self, project_id: int, name: str | None = None) -> str:
        _, token = KeyStore(self.state.db).create(
            name or f"sentry-{project_id}", ["ingest:write"], kind="sentry", project_id=project_id
        )
        return f"http://{token}@127.0.0.1:{self.port}/{project_id}"


@contextlib.contextmanager
def run_server(data_dir: Path, database_url: str, **overrides: object) -> Iterator[Server]:
    """``codequal serve``'s app under uvicorn on 127.0.0.1, in a thread, until the block ends;
    ``overrides`` are settings (``otlp_grpc_port=...``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn starts: early connections wait in the backlog, no polling needed.
    sock.listen(128)
    port = int(sock.getsockname()[1])
    settings = ingest_settings(data_dir, database_url, port, **overrides)
    app = ingest_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert app.state.codequal.wait_ready(30), "the server did not become ready"
        yield Server(f"http://127.0.0.1:{port}", port, app, settings)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    with run_server(tmp_path / "srv", database_url) as running:
        yield running


# -- tests of the router as served -------------------------------------------------------------
def test_every_ingest_route_is_served_and_documented(server: Server) -> None:
    paths = set(httpx.get(f"{server.base}/openapi.json", timeout=10).json()["paths"])
    assert set(INGEST_PATHS) <= paths


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs", "/loki/api/v1/push"])
def test_bearer_routes_need_an_ingest_write_credential(server: Server, path: str) -> None:
    with httpx.Client(base_url=server.base, timeout=10) as client:
        missing = client.post(path, content=b"{}")
        wrong_scope = client.post(path, content=b"{}", headers=READ)
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthorised"
    assert wrong_scope.status_code == 403
    assert "ingest:write" in wrong_scope.json()["detail"]


def test_sentry_routes_need_the_dsn_key_of_that_project(server: Server) -> None:
    dsn_key = server.sentry_dsn(7).split("//")[1].split("@")[0]
    _, service_token = KeyStore(server.state.db).create("svc", ["ingest:write"])
    with httpx.Client(base_url=server.base, timeout=10) as client:
        none = client.post("/api/7/envelope/", content=b"{}\n")
        other_project = client.post(f"/api/8/envelope/?sentry_key={dsn_key}", content=b"{}\n")
        service_key = client.post(f"/api/7/envelope/?sentry_key={service_token}", content=b"{}")
        unknown = client.post("/api/7/envelope/?sentry_key=cq_0123456789abcdef_nope")
        good = client.post(
            "/api/7/envelope/",
            content=b"{}\n",
            headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={dsn_key}"},
        )
    assert none.status_code == 401 and "sentry_key" in none.json()["detail"]
    assert other_project.status_code == 403 and "project 8" in other_project.json()["detail"]
    assert service_key.status_code == 403
    assert unknown.status_code == 401
    assert good.status_code == 200 and good.json() == {}


def test_sentry_requests_are_counted_and_traced_under_their_route_templates(
    server: Server,
) -> None:
    # The Sentry endpoints are reached by a shortcut past the router: what a client and an
    # operator see must be what the routes give (route labels, a trace, the router's refusals).
    dsn_key = server.sentry_dsn(3).split("//")[1].split("@")[0]
    auth = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={dsn_key}"}
    templates = ("/api/{project_id}/envelope/", "/api/{project_id}/store/")
    before = {t: requests_counted("POST", t, "200") for t in templates}
    with httpx.Client(base_url=server.base, timeout=10) as client:
        envelope = client.post("/api/3/envelope/", content=b"{}\n", headers=auth)
        store = client.post("/api/3/store/", content=b'{"message": "hello"}', headers=auth)
        not_a_project = client.post("/api/three/envelope/", content=b"{}\n", headers=auth)
        wrong_method = client.get("/api/3/envelope/", headers=auth)
    assert envelope.status_code == store.status_code == 200
    assert len(envelope.headers["x-trace-id"]) == len(store.headers["x-trace-id"]) == 32
    for template in templates:
        assert requests_counted("POST", template, "200") == before[template] + 1
    assert not_a_project.status_code == 422  # the route's validation, as before
    assert wrong_method.status_code == 405
    server.state.telemetry.flush()
    spans = SpanStore(server.state.db).trace(envelope.headers["x-trace-id"])
    assert [s.name for s in spans] == ["POST /api/{project_id}/envelope/"]


def remote_write_body() -> bytes:
    request = WriteRequest()
    series = request.timeseries.add()
    series.labels.add(name="__name__", value="up")
    series.labels.add(name="job", value="node")
    series.samples.add(value=1.0, timestamp=int(time.time() * 1000))
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def test_remote_write_through_the_shortcut_answers_as_the_route_does(
    server: Server, tmp_path: Path
) -> None:
    # POST /api/v1/write is reached by a shortcut past the router (Prometheus sends a request
    # per 2 000 samples): every answer must be the route's own, refusals included.
    body = remote_write_body()
    proto = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
    key = INGEST["Authorization"].split(" ", 1)[1]
    basic = base64.b64encode(f"tenant:{key}".encode()).decode()
    cases: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("POST", "/api/v1/write", body, {**proto, **INGEST}),
        ("POST", "/api/v1/write", body, {**proto, "Authorization": f"Basic {basic}"}),
        ("POST", "/api/v1/write", body, proto),  # no credential
        ("POST", "/api/v1/write", body, {**proto, "Authorization": "Bearer nope"}),
        ("POST", "/api/v1/write", body, {**proto, "Authorization": "Basic !!"}),
        ("POST", "/api/v1/write", body, {**proto, **READ}),  # the wrong scope
        ("POST", "/api/v1/write", body, {**INGEST, "Content-Type": "application/json"}),
        ("POST", "/api/v1/write", b"not snappy", {**proto, **INGEST}),
        ("GET", "/api/v1/write", b"", INGEST),
        ("POST", "/api/v1/write/", body, {**proto, **INGEST}),
    ]
    routes_only = bare_ingest_app(
        ingest_settings(tmp_path, f"sqlite:///{tmp_path / 'routes.sqlite'}"),
        RateLimiter(rate=1000.0, burst=1000.0),
    )
    before = requests_counted("POST", "/api/v1/write", "204")
    with (
        httpx.Client(base_url=server.base, timeout=10) as shortcut,
        TestClient(routes_only, follow_redirects=False) as routed,
    ):
        for method, path, content, headers in cases:
            got = shortcut.request(method, path, content=content, headers=headers)
            want = routed.request(method, path, content=content, headers=headers)
            where = f"{method} {path} {sorted(headers)}"
            assert got.status_code == want.status_code, where
            assert got.content == want.content, where
            for name in ("www-authenticate", "retry-after", "content-type"):
                assert got.headers.get(name) == want.headers.get(name), (where, name)
            moved = (got.headers.get("location"), want.headers.get("location"))
            redirected = {httpx.URL(url).path for url in moved if url}
            assert redirected == ({"/api/v1/write"} if got.status_code == 307 else set()), where
    routes_only.state.db.dispose()
    assert requests_counted("POST", "/api/v1/write", "204") == before + 2
    assert requests_counted("POST", "/api/v1/write", "401") >= 3
    got = httpx.post(f"{server.base}/api/v1/write", content=body, headers={**proto, **INGEST})
    server.state.telemetry.flush()
    spans = SpanStore(server.state.db).trace(got.headers["x-trace-id"])
    assert [s.name for s in spans] == ["POST /api/v1/write"]


def requests_counted(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("codequal_http_requests_total", labels) or 0.0


def test_rate_limit_answers_429_with_retry_after_per_key(tmp_path: Path) -> None:
    now = [1000.0]
    limiter = RateLimiter(rate=2.0, burst=2.0, clock=lambda: now[0])
    app = bare_ingest_app(ingest_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"), limiter)
    push = b'{"streams": []}'
    other = bearer("ingest:write", subject="other")
    with TestClient(app) as client:
        answers = [client.post("/loki/api/v1/push", content=push, headers=INGEST) for _ in range(3)]
        assert [a.status_code for a in answers] == [204, 204, 429]
        assert answers[2].headers["Retry-After"] == "1"
        assert "rate limit" in answers[2].json()["detail"]
        # Another key has its own bucket.
        assert client.post("/loki/api/v1/push", content=push, headers=other).status_code == 204
        now[0] += 0.5  # one token back at 2 per second
        assert client.post("/loki/api/v1/push", content=push, headers=INGEST).status_code == 204
        assert client.post("/loki/api/v1/push", content=push, headers=INGEST).status_code == 429
    app.state.db.dispose()
