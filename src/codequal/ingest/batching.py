"""Group commit: the writes of concurrent ingest requests share one transaction.

Each request still gets its 2xx only after its own items are committed; what changes is that
requests arriving while a write is in progress are committed together by the next write. The
cost of a transaction (statement set-up, the commit, SQLite's single writer lock) is paid once
per group instead of once per request, and SQLite writers from this process queue on a Python
lock instead of in SQLite's busy handler, which sleeps in steps of milliseconds.

A request on the event loop need not hand itself to a worker thread just to wait for the
commit: :meth:`GroupCommit.submit_async` waits on a future, and one thread writes for everyone
queued. That hand-off to a worker thread cost more than decoding and storing a small request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Ticket(Generic[T]):
    items: Sequence[T]
    done: bool = False
    error: Exception | None = None
    # Set for a request waiting on an event loop (submit_async); None for a blocked thread.
    waiter: asyncio.Future[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None


class GroupCommit(Generic[T]):
    """Calls ``write`` (one transaction) for the items of every request waiting at the time.

    Leader and followers, no timer: a thread (``submit``) queues its items, then takes the
    write lock; if its items are still queued it writes everything queued. Alone, a request
    writes at once; under load, groups grow by themselves. A coroutine (``submit_async``) queues
    its items and awaits them; the first one to find no writer at work starts one in the event
    loop's executor, which writes group after group until the queue is empty. When a group of
    several requests fails, each request's items are written again on their own, so one bad
    request cannot fail the others.
    """

    def __init__(self, write: Callable[[Sequence[T]], None]) -> None:
        self._write = write
        self._queue: list[_Ticket[T]] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._draining = False  # a writer started by submit_async is at work

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

    async def submit_async(self, items: Sequence[T]) -> None:
        """:meth:`submit` for a coroutine: the event loop goes on serving while it waits."""
        if not items:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        ticket = _Ticket(items, waiter=waiter, loop=loop)
        with self._queue_lock:
            self._queue.append(ticket)
            start, self._draining = not self._draining, True
        if start:
            try:
                loop.run_in_executor(None, self._drain)
            except RuntimeError:  # the loop's executor is shut down: the loop is stopping
                threading.Thread(target=self._drain, name="group-commit", daemon=True).start()
        await waiter

    def _drain(self) -> None:
        while True:
            with self._write_lock:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                    if not group:
                        self._draining = False
                        return
                self._commit(group)

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
            _finish(group)

    def _alone(self, ticket: _Ticket[T]) -> None:
        try:
            self._write(ticket.items)
        except Exception as exc:  # noqa: BLE001 - handed to the request it belongs to
            ticket.error = exc


def _finish(group: list[_Ticket[T]]) -> None:
    """Mark the group written; wake its coroutines, one call per event loop."""
    waiting: defaultdict[asyncio.AbstractEventLoop, list[_Ticket[T]]] = defaultdict(list)
    for ticket in group:
        ticket.done = True
        if ticket.loop is not None:
            waiting[ticket.loop].append(ticket)
    for loop, tickets in waiting.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_wake, tickets)


def _wake(tickets: list[_Ticket[T]]) -> None:
    for ticket in tickets:
        waiter = ticket.waiter
        if waiter is None or waiter.done():  # the request was cancelled meanwhile
            continue
        if ticket.error is not None:
            waiter.set_exception(ticket.error)
        else:
            waiter.set_result(None)
