"""Request telemetry as a running server produces it: one span per request (none for a
dashboard poll answered from the cache), bounded labels."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from codequal.api.app import create_app
from codequal.config import load_settings
from codequal.security import mint_token
from codequal.telemetry.metrics import REGISTRY
from tests.helpers import wait_until_ready
from tests.integration.test_serve_process import CODEQUAL, free_port

SECRET = "test-secret-" + "x" * 40


def served_requests(metrics_text: str) -> int:
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(metrics_text)
            if family.name == "codequal_http_requests"
            for sample in family.samples
            if sample.name == "codequal_http_requests_total"
        )
    )


def test_each_request_to_codequal_serve_is_stored_as_exactly_one_span(tmp_path: Path) -> None:
    # `codequal serve` sets the global tracer provider, which switches on FastAPI's own
    # OpenTelemetry unless the app turns it off: a second trace per request plus two spans.
    port = free_port()
    env = {**os.environ, "CODEQUAL_DATA_DIR": str(tmp_path), "CODEQUAL_JWT_SECRET": SECRET,
           "CODEQUAL_LOG_FORMAT": "json"}  # fmt: skip
    proc = subprocess.Popen(
        [*CODEQUAL, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    token = mint_token(SECRET, "dash", ["monitoring:read"], 3600)
    try:
        wait_until_ready(base, proc)
        public = httpx.get(f"{base}/api/monitoring/public/dashboard", timeout=30)
        private = httpx.get(
            f"{base}/api/monitoring/dashboard",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        again = httpx.get(
            f"{base}/api/monitoring/dashboard",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        # Exposition happens before this request is counted, hence the + 1.
        served = served_requests(httpx.get(f"{base}/metrics", timeout=10).text) + 1
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [public.status_code, private.status_code, again.status_code] == [200, 200, 200]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'codequal.db'}")
    with engine.connect() as conn:
        spans = conn.execute(sa.text("SELECT trace_id, name, parent_span_id FROM spans")).all()
    engine.dispose()
    by_trace = {trace: [(n, p) for t, n, p in spans if t == trace] for trace, _, _ in spans}
    for response, route in (
        (public, "/api/monitoring/public/dashboard"),
        (private, "/api/monitoring/dashboard"),
    ):
        assert by_trace[response.headers["x-trace-id"]] == [(f"GET {route}", None)]
    assert "x-trace-id" not in again.headers  # answered from the cache: counted, not traced
    assert len(spans) == served - 1  # no request left a second trace behind
    assert not [name for _, name, _ in spans if name.startswith("fastapi.")]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(load_settings(data_dir=tmp_path, log_format="json"), start_workers=False)
    with TestClient(app) as test_client:
        assert app.state.codequal.wait_ready(30)
        yield test_client


def requests_counted(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("codequal_http_requests_total", labels) or 0.0


def test_a_made_up_method_is_counted_as_other_so_clients_cannot_add_series(
    client: TestClient,
) -> None:
    before = requests_counted("_OTHER", "/live", "405")
    for verb in ("BREW", "WHEN", "PROPFIND"):
        assert client.request(verb, "/live").status_code == 405
    assert requests_counted("_OTHER", "/live", "405") == before + 3
    assert requests_counted("BREW", "/live", "405") == 0


def test_a_traceparent_header_in_any_case_joins_the_callers_trace(client: TestClient) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = client.get("/live", headers={"TraceParent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert response.headers["x-trace-id"] == trace_id
    fresh = client.get("/live")
    assert len(fresh.headers["x-trace-id"]) == 32
    assert fresh.headers["x-trace-id"] != trace_id
