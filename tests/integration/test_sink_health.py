"""A log destination that is down shows in /health as degraded without failing the probe."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from fastapi.testclient import TestClient

from codequal.api.app import create_app
from codequal.config import load_settings

from ..conftest import TEST_JWT_SECRET


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def test_a_down_loki_degrades_health_but_keeps_it_200(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        jwt_secret=TEST_JWT_SECRET,
        loki_url=f"http://127.0.0.1:{closed_port()}",
    )
    app = create_app(settings, start_workers=False)
    with TestClient(app) as client:
        assert app.state.codequal.wait_ready(30)
        telemetry = app.state.codequal.telemetry
        telemetry.logger("test").info("this line cannot reach Loki")
        telemetry.logs.flush()
        deadline = time.monotonic() + 20
        body = client.get("/health").json()
        while body.get("sinks", {}).get("loki", {}).get("status") != "degraded":
            assert time.monotonic() < deadline, body
            time.sleep(0.1)  # the delivery thread's first attempt is on its own schedule
            body = client.get("/health").json()
        response = client.get("/health")
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert (tmp_path / "spool").exists()
