"""/api/monitoring/slo reads the SLOs' error ratios from the embedded metric history."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from codequal.analytics.reports import compute_slo
from codequal.api.app import create_app
from codequal.config import load_settings
from codequal.telemetry.metrics import ANALYSIS_FAILED, ANALYSIS_STARTED

from ..conftest import TEST_JWT_SECRET, bearer


def test_slo_status_comes_from_scraped_counters(tmp_path: Path) -> None:
    app = create_app(
        load_settings(data_dir=tmp_path, jwt_secret=TEST_JWT_SECRET), start_workers=False
    )
    with TestClient(app, headers=bearer("monitoring:read")) as client:
        assert app.state.codequal.wait_ready(30)
        history = app.state.codequal.alerting.history
        now = time.time()
        started = ANALYSIS_STARTED.labels(mode="slo-test")
        failed = ANALYSIS_FAILED.labels(mode="slo-test", error_type="timeout")
        for i in range(11):  # 10 minutes at one scrape a minute: 10 analyses, 1 failure each
            history.scraper.scrape_once(round((now - 600 + 60 * i) * 1000))
            started.inc(10)
            failed.inc(1)
        statuses = {s["name"]: s for s in compute_slo(history.store, now)}
        success = statuses["analysis-success"]
        assert success["objective"] == 99.0
        assert success["burnRates"]["5m"] is not None and success["burnRates"]["5m"] > 1
        assert success["errorBudget"]["remainingRatio"] is not None
        assert success["errorBudget"]["remainingRatio"] < 1
        body = client.get("/api/monitoring/slo").json()
        assert {s["name"] for s in body["slos"]} == {
            "analysis-success",
            "analysis-latency",
            "api-availability",
        }
        assert client.get("/api/monitoring/slo", headers={"Authorization": ""}).status_code == 401


@pytest.mark.parametrize("name", ["analysis-latency", "api-availability"])
def test_an_slo_without_traffic_reports_no_numbers_rather_than_made_up_ones(
    tmp_path: Path, name: str
) -> None:
    app = create_app(
        load_settings(data_dir=tmp_path, jwt_secret=TEST_JWT_SECRET), start_workers=False
    )
    with TestClient(app):
        assert app.state.codequal.wait_ready(30)
        store = app.state.codequal.alerting.history.store
        (status,) = [s for s in compute_slo(store, time.time()) if s["name"] == name]
        assert status["sli"] is None and status["timeToExhaustionSeconds"] is None
