"""The database handle: engine creation, SQLite tuning, migrations on start."""

from __future__ import annotations

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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (the API) run while the log writer commits; NORMAL is durable at
    # checkpoint and is what WAL is designed for.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
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
