"""Group commit: the writes of concurrent ingest requests share one transaction.

Each request still gets its 2xx only after its own items are committed; what changes is that
requests arriving while a write is in progress are committed together by the next write. The
cost of a transaction (statement set-up, the commit, SQLite's single writer lock) is paid once
per group instead of once per request, and SQLite writers from this process queue on a Python
lock instead of in SQLite's busy handler, which sleeps in steps of milliseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Ticket(Generic[T]):
    items: Sequence[T]
    done: bool = False
    error: Exception | None = None


class GroupCommit(Generic[T]):
    """Calls ``write`` (one transaction) for the items of every request waiting at the time.

    Leader and followers, no extra thread and no timer: a request queues its items, then takes
    the write lock; if its items are still queued it writes everything queued. Alone, a request
    writes at once; under load, groups grow by themselves. When a group of several requests
    fails, each request's items are written again on their own, so one bad request cannot fail
    the others.
    """

    def __init__(self, write: Callable[[Sequence[T]], None]) -> None:
        self._write = write
        self._queue: list[_Ticket[T]] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def submit(self, items: Sequence[T]) -> None:
        """Return once ``items`` are committed; raise what ``write`` raised for them."""
        if not items:
            return
        ticket = _Ticket(items)
        with self._queue_lock:
            self._queue.append(ticket)
        with self._write_lock:
            if not ticket.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit(group)
        if ticket.error is not None:
            raise ticket.error

    def _commit(self, group: list[_Ticket[T]]) -> None:
        try:
            self._write([item for ticket in group for item in ticket.items])
        except Exception as exc:  # noqa: BLE001 - handed to the request(s) it belongs to
            if len(group) == 1:
                group[0].error = exc
            else:
                for ticket in group:
                    self._alone(ticket)
        finally:
            for ticket in group:
                ticket.done = True

    def _alone(self, ticket: _Ticket[T]) -> None:
        try:
            self._write(ticket.items)
        except Exception as exc:  # noqa: BLE001 - handed to the request it belongs to
            ticket.error = exc
