"""The worker pool: a bounded number of threads taking analyses from the database queue.

Jobs live in the database, so a job that was running when the process died is picked up
again: its heartbeat stops, and after ``stale_after`` seconds any worker (this process after a
restart, or another replica) puts it back in the queue.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from codequal.analysis.orchestrator import Orchestrator
from codequal.analysis.store import AnalysisRecord, AnalysisStore


class WorkerPool:
    def __init__(
        self,
        store: AnalysisStore,
        orchestrator: Orchestrator,
        *,
        size: int,
        clock: Callable[[], float] = time.time,
        heartbeat_interval: float = 5.0,
        stale_after: float = 30.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.orchestrator = orchestrator
        self.size = size
        self._clock = clock
        self._heartbeat_interval = heartbeat_interval
        self._stale_after = stale_after
        self._poll = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, str] = {}  # analysis id -> current step
        self._lock = threading.Lock()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def start(self) -> None:
        self.store.requeue_stale(self._clock(), self._stale_after)
        for i in range(self.size):
            thread = threading.Thread(target=self._work, name=f"cq-analysis-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(target=self._beat, name="cq-analysis-heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)

    def wake(self) -> None:
        """A job was submitted: stop waiting for the next poll."""
        self._wake.set()

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def running(self) -> dict[str, str]:
        with self._lock:
            return dict(self._running)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop claiming; wait up to ``timeout`` for running analyses (the rest are requeued
        after restart by their stale heartbeat)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def run_one(self, analysis_id: str | None = None) -> AnalysisRecord | None:
        """Claim one queued analysis (or the one named), run it, store the outcome."""
        record = self.store.claim(self.worker_id, self._clock(), analysis_id)
        if record is None:
            return None
        self._execute(record)
        return self.store.get(record.id)

    def _execute(self, record: AnalysisRecord) -> None:
        with self._lock:
            self._running[record.id] = "queued"

        def on_step(step: str) -> None:
            with self._lock:
                self._running[record.id] = step

        try:
            outcome = self.orchestrator.run(record, on_step)
            self.store.finish(record.id, outcome, self._clock())
        finally:
            with self._lock:
                self._running.pop(record.id, None)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_one()
            except Exception as exc:  # noqa: BLE001 - the database may be briefly unavailable
                self.orchestrator.telemetry.errors.capture_exception(exc, {"component": "jobs"})
                ran = None
            if ran is None:
                self._wake.wait(self._poll)
                self._wake.clear()

    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat_interval):
            try:
                now = self._clock()
                for analysis_id, step in self.running().items():
                    self.store.heartbeat(analysis_id, now, step)
                self.store.requeue_stale(now, self._stale_after)
            except Exception as exc:  # noqa: BLE001 - keep beating through a database blip
                self.orchestrator.telemetry.errors.capture_exception(exc, {"component": "jobs"})
