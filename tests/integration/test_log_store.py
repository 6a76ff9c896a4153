"""Log entries and critical alert events in the embedded store, on SQLite and PostgreSQL."""

from __future__ import annotations

from codequal.storage import Database
from codequal.telemetry.logging import ErrorInfo, LogEntry, LogPipeline, build_logger
from codequal.telemetry.sinks.store import StoreSink
from codequal.telemetry.stores.alerts import AlertEventStore
from codequal.telemetry.stores.logs import LogQuery, LogStore


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
