"""The anomaly scanner over the embedded metric history: stored, served, routed as alerts."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient

from codequal.alerting.model import Alert, Transition
from codequal.analytics.anomaly_service import RUNBOOK_URL, AnomalyService
from codequal.analytics.anomaly_store import anomalies
from codequal.api.anomalies import anomalies_router
from codequal.api.app import create_app
from codequal.config import load_settings
from codequal.storage import Database, open_database
from codequal.storage.db import MIGRATIONS
from codequal.storage.schema import metadata
from codequal.tsdb.store import SampleStore

from ..conftest import TEST_JWT_SECRET, bearer

NOW = 1_790_000_000.0  # an explicit "now": the scan never reads the clock
MINUTE = 60
HOUR = 3600
DAY = 86_400
STARTED = {"__name__": "codequal_analysis_started_total", "mode": "seed"}
FAILED = {"__name__": "codequal_analysis_failed_total", "mode": "seed", "error_type": "timeout"}


class RecordingNotifier:
    """Stands in for the Notifier: keeps what the scanner submits."""

    def __init__(self) -> None:
        self.transitions: list[Transition] = []

    def submit(self, transitions: Sequence[Transition], current: Sequence[Alert] = ()) -> None:
        self.transitions.extend(transitions)


def seed(
    store: SampleStore, start: float, end: float, spike: tuple[float, float] | None = None
) -> None:
    """One scrape a minute: 100 analyses, about 2 % failing; 60 % failing inside ``spike``."""
    rng = random.Random(int(start))  # noqa: S311 - test data
    started = failed = 0.0
    samples = []
    t = start
    while t <= end:
        ratio = 0.6 if spike and spike[0] <= t < spike[1] else 0.02
        started += 100
        failed += sum(rng.random() < ratio for _ in range(100))
        ms = round(t * 1000)
        samples += [(STARTED, ms, started), (FAILED, ms, failed)]
        t += MINUTE
    store.append(samples)


def test_a_failure_spike_is_stored_and_fires_a_ticket_alert_then_resolves(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'cq.db'}")
    db.migrate()
    store, notifier = SampleStore(db), RecordingNotifier()
    seed(store, NOW - 3 * DAY, NOW, spike=(NOW - 20 * MINUTE, NOW + 1))
    service = AnomalyService(store, db, notifier, days=3)

    found = service.scan_once(NOW)

    (spike,) = [f for f in found if f.series == "failure_ratio"]
    assert spike.anomaly.detector == "failure_rate" and spike.anomaly.status == "open"
    assert spike.anomaly.peak > 0.3 and "baseline" in spike.anomaly.explanation
    (row,) = service.store.query(detector="failure_rate")
    assert row.status == "open" and row.alert_status == "firing"
    (fired,) = [t for t in notifier.transitions if t.alertname == "AnomalyFailureRate"]
    assert (fired.from_status, fired.to_status) == ("inactive", "firing")
    assert fired.alert.labels["severity"] == "ticket"
    assert fired.alert.annotations["runbook_url"] == RUNBOOK_URL
    assert fired.alert.annotations["description"] == spike.anomaly.explanation

    # The same scan again finds the same window: no second row, no second page.
    service.scan_once(NOW)
    assert len(service.store.query(detector="failure_rate")) == 1
    assert len([t for t in notifier.transitions if t.alertname == "AnomalyFailureRate"]) == 1

    # Three hours of normal traffic later (over the 2 h merge gap) the incident has ended
    # and the alert resolves.
    seed(store, NOW + MINUTE, NOW + 3 * HOUR)
    service.scan_once(NOW + 3 * HOUR)
    (row,) = service.store.query(detector="failure_rate")
    assert row.status == "closed" and row.alert_status == "resolved"
    resolved = notifier.transitions[-1]
    assert (resolved.alertname, resolved.to_status) == ("AnomalyFailureRate", "resolved")
    assert resolved.alert.resolved_at == NOW + 3 * HOUR
    db.dispose()


def test_quiet_traffic_finds_nothing_and_pages_nobody(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'cq.db'}")
    db.migrate()
    store, notifier = SampleStore(db), RecordingNotifier()
    seed(store, NOW - 3 * DAY, NOW)

    assert AnomalyService(store, db, notifier, days=3).scan_once(NOW) == []
    assert notifier.transitions == []
    assert AnomalyService(store, db, notifier).store.query() == []
    db.dispose()


def test_the_api_lists_stored_anomalies_with_their_explanation(tmp_path: Path) -> None:
    app = create_app(
        load_settings(data_dir=tmp_path, jwt_secret=TEST_JWT_SECRET), start_workers=False
    )
    state = app.state.codequal
    app.include_router(anomalies_router(state, app.state.auth.require))
    with TestClient(app, headers=bearer("monitoring:read")) as client:
        assert state.wait_ready(30)
        store = SampleStore(state.db)
        seed(store, NOW - 3 * DAY, NOW, spike=(NOW - 20 * MINUTE, NOW + 1))
        AnomalyService(store, state.db, RecordingNotifier(), days=3).scan_once(NOW)

        body = client.get("/api/monitoring/anomalies", params={"since": "3650d"}).json()
        (item,) = [a for a in body["anomalies"] if a["detector"] == "failure_rate"]
        assert item["series"] == "failure_ratio" and item["status"] == "open"
        assert item["alert"] == "firing" and item["score"] > 2
        assert set(item) >= {"start", "end", "peak", "baseline", "band", "explanation"}
        only = client.get(
            "/api/monitoring/anomalies", params={"since": "3650d", "detector": "robust_z"}
        ).json()
        assert all(a["detector"] == "robust_z" for a in only["anomalies"])
        runbook = client.get(RUNBOOK_URL)
        assert runbook.status_code == 200 and runbook.text.startswith("# AnomalyDetected")
        assert client.get("/api/monitoring/anomalies", params={"since": "x"}).status_code == 400
        unknown = client.get("/api/monitoring/anomalies", params={"detector": "nope"})
        assert unknown.status_code == 400 and unknown.json()["error"] == "unknown detector"
        assert (
            client.get("/api/monitoring/anomalies", headers={"Authorization": ""}).status_code
            == 401
        )


def test_migration_0007_matches_the_model_and_downgrades(database: Database) -> None:
    with database.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diffs if anomalies.name in repr(d)] == []
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
    assert anomalies.name not in sa.inspect(database.engine).get_table_names()
    database.migrate()
    assert anomalies.name in sa.inspect(database.engine).get_table_names()
