"""The alerting tables: migration 0005 matches the models, and the store's semantics
(history rebuilt into active alerts, claims, silences) on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from codequal.alerting.model import Transition
from codequal.alerting.routing import GroupState, parse_matcher
from codequal.alerting.store import AlertingStore
from codequal.storage import Database, schema
from codequal.storage.db import MIGRATIONS
from codequal.storage.schema import metadata

from ..unit.alerting_notify.helpers import T0, alert

OURS = {
    schema.alert_transitions.name,
    schema.alert_notifications.name,
    schema.silences.name,
    schema.alert_group_state.name,
}


def _table_of(diff: object) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item if isinstance(item, tuple) else ():
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if isinstance(part, sa.Table) and name in OURS:
            return str(name)
        if table is not None and getattr(table, "name", None) in OURS:
            return str(table.name)
        if isinstance(part, str) and part in OURS:
            return part
    return None


def test_migration_creates_exactly_the_modelled_tables(database: Database) -> None:
    with database.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diffs if _table_of(d) is not None] == []
    names = set(sa.inspect(database.engine).get_table_names())
    assert names >= OURS


def test_migration_downgrades_and_upgrades_again(database: Database) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    assert not OURS & set(sa.inspect(database.engine).get_table_names())
    database.migrate()
    assert set(sa.inspect(database.engine).get_table_names()) >= OURS


def test_active_alerts_are_rebuilt_from_the_latest_transition(database: Database) -> None:
    store = AlertingStore(database)
    a, b = alert("A"), alert("B")
    gone = replace(b, status="resolved", resolved_at=T0 + 5)
    store.record_transitions(
        [
            Transition(a.fingerprint, "A", "pending", "firing", T0, a),
            Transition(b.fingerprint, "B", "pending", "firing", T0, b),
            Transition(b.fingerprint, "B", "firing", "resolved", T0 + 5, gone),
        ]
    )
    assert store.active_alerts() == [a]
    assert store.latest_alerts([b.fingerprint]) == [gone]
    assert store.latest_alerts([]) == []


def test_claim_succeeds_once_per_flush(database: Database) -> None:
    store = AlertingStore(database)
    first = GroupState(created_at=T0, flushed_at=T0 + 30)
    assert store.claim_group("g", "slack", None, first)
    assert not store.claim_group("g", "slack", None, first)  # another process got there
    later = replace(first, flushed_at=T0 + 330)
    assert store.claim_group("g", "slack", T0 + 30, later)
    assert not store.claim_group("g", "slack", T0 + 30, later)
    done = replace(later, notified_at=T0 + 330, notified=frozenset({"f1"}), digest="d")
    store.save_group("g", "slack", done)
    assert store.load_group_states() == {("g", "slack"): done}
    store.drop_group("g", "slack")
    assert store.load_group("g", "slack") is None


def test_silences_are_listed_until_they_end_or_are_expired(database: Database) -> None:
    store = AlertingStore(database)
    matchers = [parse_matcher('alertname="A"')]
    short = store.create_silence(
        matchers, starts_at=T0, ends_at=T0 + 60, created_by="a", comment="", now=T0
    )
    long = store.create_silence(
        matchers, starts_at=T0, ends_at=T0 + 600, created_by="b", comment="", now=T0 + 1
    )
    assert {s.id for s in store.active_silences(T0 + 30)} == {short.id, long.id}
    assert [s.id for s in store.active_silences(T0 + 60)] == [long.id]
    expired = store.expire_silence(long.id, T0 + 100)
    assert expired is not None and expired.expired and expired.ends_at == T0 + 100
    assert store.active_silences(T0 + 101) == []
    assert len(store.list_silences(include_expired=True, now=T0 + 101)) == 2
    assert store.expire_silence("missing", T0) is None
