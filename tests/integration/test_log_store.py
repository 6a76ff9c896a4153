"""Log entries and critical alert events in the embedded store, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from codequal.storage import Database, open_database
from codequal.storage.schema import log_entries
from codequal.telemetry.logging import ErrorInfo, LogEntry, LogPipeline, build_logger
from codequal.telemetry.sinks.store import StoreSink
from codequal.telemetry.stores.alerts import AlertEventStore
from codequal.telemetry.stores.logs import LogQuery, LogStore
from tests.conftest import PG_ADMIN_URL


def entry(i: int, level: str = "info", **kw: object) -> LogEntry:
    return LogEntry(1_000.0 + i, level, "svc", f"{i:032x}", f"action {i}", **kw)  # type: ignore[arg-type]


def test_written_entries_round_trip_with_json_fields(database: Database) -> None:
    store = LogStore(database)
    store.write(
        [
            entry(
                1,
                "error",
                user_id="u",
                repository_url="https://g/o/r",
                duration=0.25,
                error=ErrorInfo("KeyError", "'x'", "Traceback..."),
                metadata={"mode": "quick", "nested": {"n": [1, 2]}},
            )
        ]
    )
    (row,) = store.query(LogQuery())
    assert row["level"] == "error"
    assert row["user_id"] == "u"
    assert row["repository_url"] == "https://g/o/r"
    assert row["duration"] == 0.25
    assert row["error"] == {"type": "KeyError", "message": "'x'", "stack": "Traceback..."}
    assert row["metadata"] == {"mode": "quick", "nested": {"n": [1, 2]}}


def test_query_filters_by_level_and_above_trace_time_and_text(database: Database) -> None:
    store = LogStore(database)
    store.write([entry(i, level) for i, level in enumerate(["debug", "info", "warn", "error"])])
    assert [r["level"] for r in store.query(LogQuery(level="warn"))] == ["error", "warn"]
    assert [r["action"] for r in store.query(LogQuery(trace_id=f"{1:032x}"))] == ["action 1"]
    assert [r["action"] for r in store.query(LogQuery(since=1_001.0, until=1_003.0))] == [
        "action 2",
        "action 1",
    ]
    assert [r["action"] for r in store.query(LogQuery(text="ion 3"))] == ["action 3"]


def test_cursor_paging_walks_every_entry_once(database: Database) -> None:
    store = LogStore(database)
    store.write([entry(i) for i in range(25)])
    seen: list[str] = []
    cursor = None
    while True:
        page = store.query(LogQuery(limit=10, before_id=cursor))
        if not page:
            break
        seen.extend(r["action"] for r in page)
        cursor = page[-1]["id"]
    assert seen == [f"action {i}" for i in reversed(range(25))]


def test_pipeline_store_sink_persists_and_critical_lines_become_alert_events(
    database: Database,
) -> None:
    store = LogStore(database)
    alerts = AlertEventStore(database)
    pipeline = LogPipeline([StoreSink(store)])
    pipeline.alert_hook.subscribe(alerts.record_log_entries)
    pipeline.start()
    log = build_logger(pipeline, level="info", service="deepwiki")
    log.info("clone started")
    log.critical("workspace disk full", free_bytes=0)
    assert pipeline.close(10)
    assert store.count() == 2
    (alert,) = alerts.recent()
    assert (alert["source"], alert["name"], alert["severity"]) == (
        "log",
        "workspace disk full",
        "critical",
    )
    assert alert["payload"]["service"] == "deepwiki"
    assert alert["payload"]["metadata"] == {"free_bytes": 0}


# -- q: the message, the error and the fields, through the search index ----------------------
def searchable(store: LogStore) -> None:
    store.write(
        [
            entry(1, "error", error=ErrorInfo("CloneError", "repository gone", "Traceback...")),
            entry(2, metadata={"repository": "octo/widgets", "step": "deepwiki"}),
            entry(3, metadata={"labels": {"job": "billing"}, "line": "x" * 600 + " tail-marker"}),
            LogEntry(1_004.0, "info", "svc", "4" * 32, "Cloning octo/widgets took 3 s"),
            entry(5, metadata={"note": "100% done_now"}),
        ]
    )


def texts(store: LogStore, q: str) -> list[str]:
    return [r["action"] for r in store.query(LogQuery(text=q))]


def test_q_searches_the_message_error_and_fields_in_any_case(database: Database) -> None:
    store = LogStore(database)
    searchable(store)
    assert texts(store, "CloneError") == ["action 1"]  # the error's type
    assert texts(store, "REPOSITORY GONE") == ["action 1"]  # its message, any case
    assert texts(store, "octo/widgets") == ["Cloning octo/widgets took 3 s", "action 2"]
    assert texts(store, "billing") == ["action 3"]  # a Loki label kept in the fields
    assert texts(store, "tail-marker") == ["action 3"]  # a long line kept in the fields
    assert texts(store, "ion 3") == ["action 3"]  # a substring across words, as before
    assert texts(store, "100%") == ["action 5"]  # LIKE's wildcards are plain text
    assert texts(store, "e_n") == ["action 5"]
    assert texts(store, "nowhere-to-be-found") == []


def test_q_of_one_or_two_characters_still_finds_entries(database: Database) -> None:
    store = LogStore(database)
    searchable(store)
    assert texts(store, "3 s") == ["Cloning octo/widgets took 3 s"]
    assert "action 5" in texts(store, "5")


def test_q_is_answered_from_the_search_index(database: Database) -> None:
    store = LogStore(database)
    searchable(store)
    stmt = sa.select(log_entries.c.id).where(store._matches("CloneError"))
    with database.engine.connect() as conn:
        if database.dialect == "postgresql":
            conn.execute(sa.text("SET enable_seqscan = off"))  # a tiny table: force the choice
            compiled = stmt.compile(database.engine)
            rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
            assert "ix_log_entries_search" in "\n".join(r[0] for r in rows)
        else:
            literal = stmt.compile(database.engine, compile_kwargs={"literal_binds": True})
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {literal}")
            plan = "\n".join(str(r) for r in rows)
            assert "VIRTUAL TABLE INDEX" in plan and "log_search" in plan


def test_q_with_a_nul_or_fts_syntax_is_plain_text(database: Database) -> None:
    store = LogStore(database)
    searchable(store)
    for hostile in ("[\U000f731a\x00,", 'a" OR "b', "NEAR(a b)", "x*", "\x00\x00\x00"):
        assert texts(store, hostile) == []
    assert texts(store, "e_n") == ["action 5"]


@pytest.mark.postgres
def test_the_search_index_is_built_when_pg_trgm_lives_outside_the_search_path() -> None:
    """A database where pg_trgm was installed in public, and CodeQual runs in its own schema
    (search_path without public): migrating used to fail, the operator class not found."""
    name = f"cq_trgm_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable ({exc})")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        setup = sa.create_engine(url)
        with setup.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION pg_trgm SCHEMA public"))
            conn.execute(sa.text("CREATE SCHEMA codequal"))
        setup.dispose()
        database = open_database(f"{url}?options=-csearch_path%3Dcodequal")
        database.migrate()
        store = LogStore(database)
        searchable(store)
        assert texts(store, "CloneError") == ["action 1"]
        with database.engine.connect() as conn:
            index = conn.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_log_entries_search'")
            ).scalar_one()
        assert "public.gin_trgm_ops" in index
        database.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
