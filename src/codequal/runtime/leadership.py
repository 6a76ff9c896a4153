"""Leadership among replicas: exactly one process at a time runs the singleton work.

Several ``codequal serve`` processes may share one database. Work that must happen once per
deployment, not once per replica (rule evaluation and notifications, anomaly scans, metric
retention), runs only in the process that holds the leader lock
(:func:`codequal.storage.locks.leader_lock`: a PostgreSQL advisory lock, or a file lock beside a
SQLite database).

:class:`Leadership` tries (or, as leader, verifies) every ``poll_interval`` seconds on a
background thread and calls ``on_change(is_leader)`` on every change, so workers can restore
persisted state when they gain the lead and go quiet when they lose it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from codequal.storage.db import Database
from codequal.storage.locks import leader_lock
from codequal.telemetry.metrics import LEADER, LEADER_CHANGES

DEFAULT_POLL_INTERVAL = 1.0


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
        self._lock = leader_lock(db)
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
