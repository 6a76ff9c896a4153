"""Leadership on the real databases: one leader per schema, takeover when it goes away, and
the singleton work that follows it (a new leader neither loses nor repeats a page)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from codequal.alerting.notifier import Notifier
from codequal.alerting.service import WATERMARK_KEY, CriticalLogFeed
from codequal.alerting.store import AlertingStore
from codequal.runtime.leadership import Leadership
from codequal.storage import Database, open_database
from codequal.storage.kv import KeyValueStore
from codequal.telemetry.logging import ErrorInfo, LogEntry
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.stores.logs import LogStore

from ..unit.alerting_notify.helpers import T0, ScriptedChannel, alert
from .test_notify_notifier import CONFIG


@pytest.fixture
def replicas(database_url: str) -> Iterator[tuple[Database, Database]]:
    """Two handles on one migrated database: each has its own connections, like two
    processes."""
    a, b = open_database(database_url), open_database(database_url)
    a.migrate()
    try:
        yield a, b
    finally:
        a.dispose()
        b.dispose()


def leader_gauge() -> float | None:
    return REGISTRY.get_sample_value("codequal_leader")


def test_exactly_one_replica_leads_and_the_other_takes_over_when_it_stops(
    replicas: tuple[Database, Database],
) -> None:
    changes: list[tuple[str, bool]] = []
    first = Leadership(replicas[0], on_change=lambda on: changes.append(("a", on)))
    second = Leadership(replicas[1], on_change=lambda on: changes.append(("b", on)))
    try:
        assert first.check() is True
        assert leader_gauge() == 1.0
        assert second.check() is False
        assert first.check() is True  # the leader keeps it on every round
        assert second.check() is False
        first.stop()
        assert second.check() is True
        assert first.check() is False  # stopped: no longer campaigning, no longer leading
        assert changes == [("a", True), ("a", False), ("b", True)]
    finally:
        first.stop()
        second.stop()


@pytest.mark.postgres
def test_a_leader_whose_session_dies_loses_the_lead_and_another_replica_takes_it(
    pg_schema_url: str,
) -> None:
    a, b = open_database(pg_schema_url), open_database(pg_schema_url)
    first, second = Leadership(a), Leadership(b)
    try:
        assert first.check() and not second.check()
        # What `kill -9` of the leader, or a network cut, looks like to PostgreSQL. The
        # timeout makes the call wait until the backend has exited (and so released its
        # locks): without it the signal is only sent, and the takeover below races the exit.
        with b.engine.begin() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                )
            ).scalars()
            assert any(killed)
        assert second.check() is True
        assert first.check() is False  # its session is gone, and the lock with it
        assert first.check() is False  # and the lock is taken now
    finally:
        first.stop()
        second.stop()
        a.dispose()
        b.dispose()


@pytest.mark.postgres
def test_deployments_in_different_schemas_each_elect_their_own_leader(
    pg_schema_url: str,
) -> None:
    base = pg_schema_url.split("?", maxsplit=1)[0]
    other = f"cq_test_other_{uuid.uuid4().hex[:8]}"
    admin = open_database(base)
    with admin.engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{other}"'))
    a, b = open_database(pg_schema_url), open_database(f"{base}?options=-csearch_path%3D{other}")
    first, second = Leadership(a), Leadership(b)
    try:
        assert first.check() is True
        assert second.check() is True
    finally:
        first.stop()
        second.stop()
        with admin.engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{other}" CASCADE'))
        for db in (a, b, admin):
            db.dispose()


def test_two_processes_on_one_sqlite_file_elect_one_leader(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'codequal.db'}"
    a, b = open_database(url), open_database(url)
    first, second = Leadership(a), Leadership(b)
    try:
        assert first.check() is True
        assert second.check() is False
        first.stop()
        assert second.check() is True
    finally:
        first.stop()
        second.stop()


def _critical(action: str, at: float) -> LogEntry:
    return LogEntry(
        timestamp=at,
        level="critical",
        service="worker",
        trace_id="ab" * 16,
        action=action,
        error=ErrorInfo("DiskFull", "no space left on device"),
    )


def test_a_followers_critical_log_entry_pages_through_the_leader_exactly_once(
    replicas: tuple[Database, Database],
) -> None:
    leader_db, follower_db = replicas
    channel = ScriptedChannel("pagerduty")
    notifier = Notifier(AlertingStore(leader_db), {"pagerduty": channel}, CONFIG)
    feed = CriticalLogFeed(leader_db, notifier)
    notifier.sources.append(feed.pull)
    follower_logs = LogStore(follower_db)
    follower_logs.write([_critical("old disaster", T0 - 3600)])
    notifier.tick(T0)  # the first leader ever starts from now: history does not page
    follower_logs.write([_critical("workspace unwritable", T0 + 1)])
    notifier.tick(T0 + 2)
    notifier.tick(T0 + 40)  # after group_wait
    (note,) = channel.sent
    assert [a.labels["action"] for a in note.alerts] == ["workspace unwritable"]
    assert "DiskFull: no space left on device" in note.alerts[0].annotations["description"]

    # The leader changes: the new one carries on from the persisted position and the
    # persisted group state, so the same entry does not page again.
    successor = Notifier(AlertingStore(follower_db), {"pagerduty": channel}, CONFIG)
    successor.sources.append(CriticalLogFeed(follower_db, successor).pull)
    successor.tick(T0 + 50)
    successor.tick(T0 + 100)
    assert len(channel.sent) == 1
    assert KeyValueStore(follower_db).get(WATERMARK_KEY) == {"id": LogStore(follower_db).last_id()}


def test_an_alert_the_evaluator_fires_but_the_notifier_never_heard_of_still_pages(
    database: Database,
) -> None:
    # The previous leader persisted its evaluation (the alert is firing) and died before its
    # notifier recorded the transition: the new leader's first evaluation reports the alert
    # as current, with no transition, and that must still page.
    channel = ScriptedChannel("pagerduty")
    notifier = Notifier(AlertingStore(database), {"pagerduty": channel}, CONFIG)
    firing = alert("HighFailureRate", "critical")
    notifier.submit([], current=[firing])
    notifier.tick(T0)
    notifier.tick(T0 + 30)
    (note,) = channel.sent
    assert note.alerts == (firing,)
    notifier.submit([], current=[firing])  # every later evaluation: no second page
    notifier.tick(T0 + 60)
    notifier.tick(T0 + 400)
    assert len(channel.sent) == 1
