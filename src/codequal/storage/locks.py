"""Locks that elect one leader among the processes sharing a database.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a dedicated
  connection. The server frees it the moment that session ends, so a process killed with
  ``kill -9`` (or cut off from the database) gives the lock up at once. The key is derived
  from the database and schema, so deployments sharing one PostgreSQL server in different
  schemas each elect their own leader.
- SQLite: an exclusive ``flock`` on a file beside the database, for the rare case of two
  processes on one data dir; the kernel frees it when the process dies.
- In-memory SQLite belongs to one process, which always leads.

:func:`leader_lock` picks the right one; :class:`codequal.runtime.leadership.Leadership`
campaigns with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from codequal.storage.db import Database


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...
    def still_held(self) -> bool: ...
    def release(self) -> None: ...


def lock_key(database: str, schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for one CodeQual schema."""
    digest = hashlib.sha256(f"codequal-leader:{database}.{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _PostgresLock:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: Connection | None = None
        self._key: int | None = None

    def try_acquire(self) -> bool:
        conn = self._db.engine.connect()
        try:
            if self._key is None:
                row = conn.execute(sa.text("SELECT current_database(), current_schema()")).one()
                self._key = lock_key(str(row[0]), str(row[1]))
            got = bool(
                conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar()
            )
            conn.commit()  # end the implicit transaction; the session lock outlives it
        except Exception:
            _discard(conn)
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        """True while the session holding the lock is alive (it is the lock)."""
        if self._conn is None:
            return False
        try:
            # A session lock lasts as long as its session: a live session still holds it.
            self._conn.execute(sa.text("SELECT 1"))
            self._conn.commit()
        except Exception:  # noqa: BLE001 - a dead session is a lost lock
            self.release()
            return False
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            conn.commit()
            conn.close()
        except Exception:  # noqa: BLE001 - the session is gone, and the lock with it
            _discard(conn)


class _FileLock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        f = self._path.open("ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._file = f
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            f.close()


class _AlwaysLeader:
    """An in-memory SQLite database belongs to one process: it always leads."""

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def _discard(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        conn.invalidate()
    with contextlib.suppress(Exception):
        conn.close()


def leader_lock(db: Database) -> LeaderLock:
    """The lock that elects this database's leader."""
    if db.dialect == "postgresql":
        return _PostgresLock(db)
    database = db.engine.url.database
    if db.dialect == "sqlite" and database and database != ":memory:":
        return _FileLock(Path(database).with_name(Path(database).name + ".leader"))
    return _AlwaysLeader()
