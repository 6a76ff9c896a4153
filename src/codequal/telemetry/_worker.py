"""A bounded queue drained by one background thread: the shape every telemetry export takes.

The caller's ``submit`` never blocks and never raises. When the queue is full the oldest item
is dropped and counted (``on_drop``), because the newest entries are the ones an operator needs
while something is going wrong. The worker hands batches to ``handler``; a handler that raises
loses that batch only, and the failure is reported through ``on_error``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class BatchWorker(Generic[T]):
    """Queue items from any thread; a daemon thread passes them to ``handler`` in batches."""

    def __init__(
        self,
        name: str,
        handler: Callable[[Sequence[T]], None],
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.25,
        on_drop: Callable[[int], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self._handler = handler
        self._queue: deque[T] = deque()
        self._max = max_queue
        self._batch = batch_size
        self._interval = flush_interval
        self._on_drop = on_drop
        self._on_error = on_error
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._inflight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"cq-{self.name}", daemon=True)
            self._thread.start()

    def submit(self, item: T) -> None:
        """Queue ``item``; drop the oldest when full. O(1), lock-free on the caller's side."""
        queue = self._queue
        if len(queue) >= self._max:
            try:
                queue.popleft()
            except IndexError:
                pass
            else:
                self.dropped += 1
                if self._on_drop is not None:
                    self._on_drop(1)
        queue.append(item)
        if len(queue) >= self._batch:
            self._wake.set()

    def depth(self) -> int:
        return len(self._queue)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has been handled; False on timeout."""
        if self._thread is None:
            self._drain()
            return True
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._queue or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(remaining, 0.05))
        return True

    def stop(self, timeout: float = 5.0) -> bool:
        """Flush with a deadline, then stop the thread. Returns False if items were left."""
        flushed = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, timeout))
            self._thread = None
        return flushed

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            batch: list[T] = []
            with self._idle:
                self._inflight += 1
            try:
                while queue and len(batch) < self._batch:
                    batch.append(queue.popleft())
                self._handle(batch)
            finally:
                with self._idle:
                    self._inflight -= 1
                    self._idle.notify_all()
        with self._idle:
            self._idle.notify_all()

    def _handle(self, batch: list[T]) -> None:
        try:
            self._handler(batch)
        except Exception as exc:  # noqa: BLE001 - telemetry must survive any handler failure
            if self._on_error is not None:
                with contextlib.suppress(Exception):  # the error reporter itself failed
                    self._on_error(exc)
