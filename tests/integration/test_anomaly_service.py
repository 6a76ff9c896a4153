"""The anomaly scanner over the embedded metric history: stored, served, routed as alerts."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient

from codequal.alerting.model import Alert, Transition
from codequal.analytics.anomaly import Anomaly, Status
from codequal.analytics.anomaly_service import RUNBOOK_URL, AnomalyService, window_start
from codequal.analytics.anomaly_store import AnomalyStore, Found, anomalies
from codequal.api.anomalies import anomalies_router
from codequal.api.app import create_app
from codequal.config import load_settings
from codequal.storage import Database, open_database
from codequal.storage.db import MIGRATIONS
from codequal.storage.schema import metadata
from codequal.tsdb.store import SampleStore
from codequal.vocabulary import iso_timestamp

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


@pytest.fixture
def scanned(tmp_path: Path) -> Iterator[tuple[Database, SampleStore, RecordingNotifier]]:
    """A migrated SQLite database, the metric history in it, and a notifier to watch."""
    db = open_database(f"sqlite:///{tmp_path / 'cq.db'}")
    db.migrate()
    yield db, SampleStore(db), RecordingNotifier()
    db.dispose()


def test_a_rescan_over_a_moved_window_finds_the_same_incident_as_the_same_row(
    scanned: tuple[Database, SampleStore, RecordingNotifier],
) -> None:
    # The window starts at the start of a day, `days` back. A scan the next day starts a day
    # later, and failure_rate learns for two days from there: a burst that straddles the end
    # of that learning is detected later than the first scan detected it. Same incident,
    # same row.
    db, store, notifier = scanned
    day = window_start(NOW, 0)  # the start of NOW's day
    burst = (day + 30 * MINUTE, day + 2 * HOUR)
    seed(store, day - 4 * DAY, day + DAY + 2 * HOUR, spike=burst)
    service = AnomalyService(store, db, notifier, days=3)

    first = service.scan_once(day + 5 * HOUR)  # the burst is over: a closed incident
    again = service.scan_once(day + 5 * HOUR + 10 * MINUTE)  # the same window start
    moved = service.scan_once(day + DAY + 2 * HOUR)  # the window starts a day later

    starts = [
        [f.anomaly.start for f in scan if f.anomaly.detector == "failure_rate"]
        for scan in (first, again, moved)
    ]
    assert starts[0] == starts[1] == [day + 30 * MINUTE]
    assert starts[2] == [day + HOUR]  # detected once the moved window had learned
    (row,) = service.store.query(detector="failure_rate")
    assert row.start == day + 30 * MINUTE
    assert row.record["start"] == "2026-09-21T00:30:00.000Z"
    (latest,) = [f.anomaly for f in moved if f.anomaly.detector == "failure_rate"]
    assert row.record["end"] == iso_timestamp(latest.end)  # the latest scan's numbers
    assert row.record["explanation"] == latest.explanation
    assert row.status == "closed"
    assert [t for t in notifier.transitions if t.alertname == "AnomalyFailureRate"] == []


def test_an_incident_open_when_the_day_turns_keeps_its_row_and_pages_once(
    scanned: tuple[Database, SampleStore, RecordingNotifier],
) -> None:
    # A burst that began before midnight and lasts past the moment the next day's window
    # would have finished learning: while it is open, the window keeps its start.
    db, store, notifier = scanned
    day = window_start(NOW, 0)
    seed(store, day - 4 * DAY, day + 2 * HOUR, spike=(day - 30 * MINUTE, day + 3 * HOUR))
    service = AnomalyService(store, db, notifier, days=2)

    for now in (day - 10 * MINUTE, day + 5 * MINUTE, day + HOUR, day + 2 * HOUR):
        found = service.scan_once(now)
        starts = [f.anomaly.start for f in found if f.anomaly.detector == "failure_rate"]
        assert starts == [day - 30 * MINUTE], now

    (row,) = service.store.query(detector="failure_rate")
    assert row.status == "open" and row.alert_status == "firing"
    paged = [t for t in notifier.transitions if t.alertname == "AnomalyFailureRate"]
    assert [(t.from_status, t.to_status) for t in paged] == [("inactive", "firing")]


def test_an_incident_no_earlier_scan_found_in_history_it_judged_is_not_stored(
    database: Database,
) -> None:
    store = AnomalyStore(database)

    def incident(start: float, status: Status) -> Found:
        a = Anomaly(
            "robust_z", start, start + 600, start, 9.0, 1.0, (0.0, 2.0), 5.0, "up", status, "x"
        )
        return Found("throughput", a)

    store.upsert([incident(NOW, "closed")], NOW + HOUR)
    assert len(store.query()) == 1
    # A later scan (whose window moved) re-dates it and finds an older one nobody saw:
    store.upsert(
        [incident(NOW + 300, "closed"), incident(NOW - DAY, "closed")],
        NOW + 2 * HOUR,
        judged_before=NOW + HOUR,
    )
    (row,) = store.query()
    assert (row.start, row.record["start"]) == (NOW, "2026-09-21T14:13:20.000Z")
    assert row.record["end"] == "2026-09-21T14:28:20.000Z"  # the latest scan's end
    # What began after the last scan, or is still going on, is news.
    store.upsert(
        [incident(NOW + 3 * HOUR, "closed"), incident(NOW - 2 * DAY, "open")],
        NOW + 4 * HOUR,
        judged_before=NOW + 2 * HOUR,
    )
    assert sorted(r.start for r in store.query()) == [NOW - 2 * DAY, NOW, NOW + 3 * HOUR]
