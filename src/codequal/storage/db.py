"""The database handle: engine creation, SQLite tuning, migrations on start."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine, make_url

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x436F_6465_5175_616C  # "CodeQual": serialises migrations across replicas
# SQLite's writer copies the write-ahead log into the database file itself, in the commit that
# takes the log past 1 000 pages (4 MiB), and syncs both files: the ingest thread's commit of
# 2 000 new series cost 1.5 us a series on an empty store and 26 us at 80 000 series, most of
# it that copy. A server checkpoints on a thread of its own instead (WalCheckpointer, which
# drops the commit to 4 us); a writer still checkpoints itself past 16 384 pages, so a process
# without that thread (a CLI command) or one that fell behind keeps a bounded log.
WAL_AUTOCHECKPOINT_PAGES = 16_384
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the log file keeps once reset
WAL_CHECKPOINT_SECONDS = 1.0


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (the API) run while the log writer commits; NORMAL is durable at
    # checkpoint and is what WAL is designed for.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cur.close()


@dataclass(frozen=True)
class Database:
    """An engine plus the operations every store needs."""

    engine: Engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def placeholder(self) -> str:
        """The driver's parameter marker, for SQL run with ``exec_driver_sql``."""
        return "?" if self.engine.dialect.paramstyle == "qmark" else "%s"

    def insert_sql(self, table: str, columns: Sequence[str]) -> str:
        """``INSERT INTO table (columns) VALUES (...)`` for a DBAPI executemany of tuples.

        The hottest writers (log entries, spans) skip SQLAlchemy's per-row parameter
        processing this way: it cost several times the insert itself.
        """
        marks = ", ".join([self.placeholder] * len(columns))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608

    def migrate(self) -> None:
        """Apply every pending migration (idempotent)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Replicas starting together: one migrates, the others wait and find it done.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def ping(self) -> float:
        """Run ``SELECT 1``; return the round trip in seconds."""
        start = time.perf_counter()
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return time.perf_counter() - start

    def dispose(self) -> None:
        self.engine.dispose()


class WalCheckpointer:
    """Copies a SQLite database's write-ahead log into the database file every ``interval``
    seconds, on a thread of its own, so that writers' commits do not (PASSIVE: it waits for no
    reader or writer, and copies what they no longer need). SQLite runs the copy and its syncs
    without Python's lock. Does nothing for PostgreSQL or an in-memory database."""

    def __init__(self, db: Database, interval: float = WAL_CHECKPOINT_SECONDS) -> None:
        self._db = db
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        database = db.engine.url.database
        self.enabled = db.dialect == "sqlite" and database not in (None, "", ":memory:")
        self.failures = 0  # checkpoints that raised (the database busy, a disk error)

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cq-wal-checkpoint", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def checkpoint(self) -> tuple[int, int, int]:
        """One passive checkpoint: (1 if it could not start, frames in the log, frames copied)."""
        with self._db.engine.connect() as conn:
            busy, logged, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return int(busy), int(logged), int(copied)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.checkpoint()
            except Exception:  # noqa: BLE001 - a writer's own checkpoint takes over meanwhile
                self.failures += 1


def _json_dumps(value: Any) -> str:
    # orjson is several times faster than json for the log and span payloads we store.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def open_database(url: str, *, echo: bool = False) -> Database:
    """Create the engine for ``url``; for SQLite, create the file's folder and enable WAL."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {
        "echo": echo,
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = 10
    engine = sa.create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return Database(engine)
