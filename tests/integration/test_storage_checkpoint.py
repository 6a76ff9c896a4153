"""SQLite's write-ahead log is copied into the database file by the server's own thread, not by
the commits of the ingest writers, and stays bounded without that thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codequal.storage.db import (
    WAL_AUTOCHECKPOINT_PAGES,
    Database,
    WalCheckpointer,
    open_database,
)
from codequal.tsdb import series_index
from codequal.tsdb.promql import Labels

PAGE = 4096


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{tmp_path / 'cq.db'}")
    db.migrate()
    yield db
    db.dispose()


def create_series(db: Database, first: int, count: int) -> None:
    """What a remote-write client's first request does: thousands of new series, one commit."""
    wanted = [
        Labels((("__name__", "node_cpu_seconds_total"), ("cpu", str(i)), ("job", "node")))
        for i in range(first, first + count)
    ]
    with db.engine.begin() as conn:
        series_index.ensure_series(conn, wanted, 1_000)


def db_file(db: Database) -> Path:
    return Path(str(db.engine.url.database))


def test_commits_leave_the_log_to_the_checkpointer(sqlite_db: Database) -> None:
    checkpointer = WalCheckpointer(sqlite_db)
    checkpointer.checkpoint()
    size = db_file(sqlite_db).stat().st_size
    for batch in range(4):  # well past SQLite's own 1 000-page checkpoint, inside ours
        create_series(sqlite_db, batch * 4_000, 4_000)
    assert db_file(sqlite_db).stat().st_size == size  # no commit copied the log
    busy, logged, copied = checkpointer.checkpoint()
    assert (busy, copied) == (0, logged)
    assert 1_000 < logged < WAL_AUTOCHECKPOINT_PAGES
    assert db_file(sqlite_db).stat().st_size > size + 100 * PAGE
    with sqlite_db.engine.connect() as conn:  # nothing lost on the way
        ids = series_index._ids_by_fingerprint(
            conn,
            [series_index.fingerprint(Labels((("__name__", "node_cpu_seconds_total"),
                                              ("cpu", str(i)), ("job", "node"))))
             for i in range(0, 16_000, 997)],
        )  # fmt: skip
    assert len(ids) == len(range(0, 16_000, 997))


def test_the_thread_checkpoints_on_its_own_and_stops(sqlite_db: Database) -> None:
    checkpointer = WalCheckpointer(sqlite_db, interval=0.02)
    checkpointer.checkpoint()
    size = db_file(sqlite_db).stat().st_size
    checkpointer.start()
    try:
        create_series(sqlite_db, 0, 4_000)
        deadline = time.monotonic() + 30
        while db_file(sqlite_db).stat().st_size <= size and time.monotonic() < deadline:
            time.sleep(0.02)
        assert db_file(sqlite_db).stat().st_size > size  # copied with no commit's help
    finally:
        checkpointer.stop()
    assert checkpointer.failures == 0
    assert not any(t.name == "cq-wal-checkpoint" for t in threading.enumerate())


def test_a_writer_without_the_thread_still_bounds_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI command writes with no checkpointer running: past WAL_AUTOCHECKPOINT_PAGES (here
    SQLite's own 1 000), its own commit copies the log, so the log does not grow without end."""
    monkeypatch.setattr("codequal.storage.db.WAL_AUTOCHECKPOINT_PAGES", 1_000)
    db = open_database(f"sqlite:///{tmp_path / 'cq.db'}")
    try:
        db.migrate()
        size = db_file(db).stat().st_size
        for batch in range(4):
            create_series(db, batch * 4_000, 4_000)
        assert db_file(db).stat().st_size > size + 100 * PAGE
    finally:
        db.dispose()


def test_only_a_sqlite_file_gets_a_checkpointer(database: Database, tmp_path: Path) -> None:
    memory = open_database("sqlite://")
    try:
        assert not WalCheckpointer(memory).enabled
    finally:
        memory.dispose()
    assert WalCheckpointer(database).enabled == (database.dialect == "sqlite")
