"""Leadership among replicas: exactly one process at a time runs the singleton work.

Several ``codequal serve`` processes may share one database. Work that must happen once per
deployment, not once per replica (rule evaluation and notifications, anomaly scans, metric
retention), runs only in the process that holds the leader lock:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a dedicated
  connection. The server frees it the moment that session ends, so a replica killed with
  ``kill -9`` (or cut off from the database) gives the lock up at once and another replica
  takes it on its next try. The key is derived from the database and schema, so deployments
  sharing one PostgreSQL server in different schemas each elect their own leader.
- SQLite: an exclusive ``flock`` on a file beside the database, for the rare case of two
  processes on one data dir; the kernel frees it when the process dies.

:class:`Leadership` tries (or, as leader, verifies) every ``poll_interval`` seconds on a
background thread and calls ``on_change(is_leader)`` on every change, so workers can restore
persisted state when they gain the lead and go quiet when they lose it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from codequal.storage.db import Database
from codequal.telemetry.metrics import LEADER, LEADER_CHANGES

DEFAULT_POLL_INTERVAL = 1.0


def lock_key(database: str, schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for one CodeQual schema."""
    digest = hashlib.sha256(f"codequal-leader:{database}.{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _Lock(Protocol):
    def try_acquire(self) -> bool: ...
    def still_held(self) -> bool: ...
    def release(self) -> None: ...


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


def _lock_for(db: Database) -> _Lock:
    if db.dialect == "postgresql":
        return _PostgresLock(db)
    database = db.engine.url.database
    if db.dialect == "sqlite" and database and database != ":memory:":
        return _FileLock(Path(database).with_name(Path(database).name + ".leader"))
    return _AlwaysLeader()


class Leadership:
    """``Leadership(db, on_change=...)``; ``start()`` campaigns, ``is_leader`` is the answer."""

    def __init__(
        self,
        db: Database,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_change: Callable[[bool], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError(f"the poll interval must be positive, got {poll_interval}")
        self._lock = _lock_for(db)
        self._poll = poll_interval
        self._listeners: list[Callable[[bool], None]] = [on_change] if on_change else []
        self._on_error = on_error
        self._leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        LEADER.set(0)

    @property
    def is_leader(self) -> bool:
        return self._leader

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(is_leader)`` on every change (from the campaign thread)."""
        self._listeners.append(listener)

    def check(self) -> bool:
        """One round: verify the lock if held, else try to take it. Returns ``is_leader``."""
        try:
            if self._leader:
                # A lost session (the database restarted, or was unreachable): take the lock
                # again at once if nobody else did meanwhile.
                leading = self._lock.still_held() or self._lock.try_acquire()
            else:
                leading = self._lock.try_acquire()
        except Exception as exc:  # noqa: BLE001 - the database is unreachable
            # Nobody can take the lock while the database is down, so the leader keeps leading
            # (its notifier can still page about the outage) and a follower keeps following.
            # When the database is back, whoever takes the lock first leads.
            leading = self._leader
            if self._on_error is not None:
                self._on_error(exc)
        if leading != self._leader:
            self._set(leading)
        return leading

    def start(self) -> None:
        """Campaign on a daemon thread: the first try happens before this returns."""
        self.check()
        self._thread = threading.Thread(target=self._run, name="cq-leader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop campaigning and give the lock up so another replica takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._leader:
            self._set(False)
        self._lock.release()

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            self.check()

    def _set(self, leading: bool) -> None:
        self._leader = leading
        LEADER.set(1 if leading else 0)
        LEADER_CHANGES.inc()
        for listener in self._listeners:
            try:
                listener(leading)
            except Exception as exc:  # noqa: BLE001 - one bad listener must not stop the rest
                if self._on_error is not None:
                    self._on_error(exc)
