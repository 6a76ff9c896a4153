"""One machine, nothing else installed: a DeepWiki outage is scraped, evaluated and paged.

The server's own scraper, rule scheduler and notifier are driven with explicit times (no
sleeping); the page arrives at a webhook receiver on loopback in Alertmanager's JSON.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from codequal.api.app import create_app
from codequal.config import load_settings

from ..conftest import TEST_JWT_SECRET, bearer


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_deepwiki_down_fires_after_its_for_and_pages_the_webhook(
    tmp_path: Path, webhook: str
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("the workspace cannot be created here")
    settings = load_settings(
        data_dir=tmp_path / "data",
        deepwiki_dir=blocker / "workspace",
        jwt_secret=TEST_JWT_SECRET,
        webhook_url=webhook,
    )
    app = create_app(settings, start_workers=False)
    with TestClient(app) as client:
        assert app.state.codequal.wait_ready(30)
        alerting = app.state.codequal.alerting
        start = 1_800_000_000.0
        states = []
        for step in range(13):  # 3 minutes at 15 s
            now = start + 15 * step
            alerting.history.scraper.scrape_once(round(now * 1000))
            alerting.scheduler.evaluate_once(now)
            alerting.notifier.tick(now)
            overview = {r["name"]: r for r in alerting.rules_overview()}
            states.append(overview["DeepWikiDown"]["state"])
        alerting.notifier.tick(start + 15 * 12 + 31)  # past group_wait
        assert states[0] == "pending" and states[-1] == "firing"
        assert states.index("firing") == 8  # the `for: 2m` at a 15 s interval
        pages = [
            a
            for body in Receiver.received
            for a in body["alerts"]
            if a["labels"]["alertname"] == "DeepWikiDown"
        ]
        assert pages and pages[0]["status"] == "firing"
        assert pages[0]["labels"]["severity"] == "critical"
        assert pages[0]["annotations"]["runbook_url"].endswith("/runbooks/DeepWikiDown")
        assert Receiver.received[0]["version"] == "4"
        read = bearer("monitoring:read")
        active = client.get("/api/monitoring/alerts", headers=read).json()
        assert "DeepWikiDown" in json.dumps(active)
        panel = client.get("/api/monitoring/dashboard", headers=read).json()["firingAlerts"]
        down = [a for a in panel if a["alertname"] == "DeepWikiDown"]
        assert down and down[0]["runbookUrl"] == "/runbooks/DeepWikiDown"
        assert client.get(down[0]["runbookUrl"]).status_code == 200


def test_rules_that_cannot_run_page_through_the_notifier_without_the_database(
    tmp_path: Path, webhook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", jwt_secret=TEST_JWT_SECRET, webhook_url=webhook
    )
    app = create_app(settings, start_workers=False)
    with TestClient(app):
        state = app.state.codequal
        assert state.wait_ready(30)
        alerting = state.alerting

        def unreachable(*_args: Any, **_kwargs: Any) -> Any:
            raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))

        # What PostgreSQL stopped looks like to the rules: the history cannot be read.
        monkeypatch.setattr(alerting.history.store, "select", unreachable)
        start = 1_800_000_000.0
        alerting.scheduler.run_round(start)
        assert alerting.scheduler.consecutive_failures == 1
        alerting.scheduler.run_round(start + 15)
        state.telemetry.logs.flush(5)  # the critical entry reaches the alert hook
        alerting.notifier.tick(start + 16)
        alerting.notifier.tick(start + 16 + 31)  # past group_wait
        pages = [
            a
            for body in Receiver.received
            for a in body["alerts"]
            if a["labels"]["alertname"] == "CriticalLogEntry"
        ]
        assert [p["labels"]["action"] for p in pages] == ["alert rules cannot be evaluated"]
        assert "connection refused" in pages[0]["annotations"]["description"]
        monkeypatch.undo()
        alerting.scheduler.run_round(start + 30)
        assert alerting.scheduler.consecutive_failures == 0
