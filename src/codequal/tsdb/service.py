"""The embedded metric history as the server runs it: store, scraper and retention together."""

from __future__ import annotations

import time
from collections.abc import Callable

from codequal.config import Settings
from codequal.storage.db import Database
from codequal.tsdb.promql.limits import QueryLimits
from codequal.tsdb.scrape import DEFAULT_JOB, Collectable, Periodic, Scraper
from codequal.tsdb.store import SampleStore, store_for

DAY_SECONDS = 86_400.0
DEFAULT_RETENTION_CHECK = 600.0  # chunks span 2 h; ten minutes late is never noticed


def query_limits(settings: Settings) -> QueryLimits:
    """The limits every query of this process runs under (API, rules, dashboard)."""
    return QueryLimits(
        timeout_seconds=settings.query_timeout, max_samples=settings.query_max_samples
    )


class RetentionTask:
    """Deletes chunks older than ``retention`` seconds, every ``check_interval`` seconds."""

    def __init__(
        self,
        store: SampleStore,
        retention: float,
        *,
        check_interval: float = DEFAULT_RETENTION_CHECK,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retention <= 0:
            raise ValueError(f"the retention must be positive, got {retention} s")
        self.store = store
        self.retention_ms = round(retention * 1000)
        # With several replicas on one database only the leader deletes (see cluster.py).
        self.active = True
        self._loop = Periodic("tsdb-retention", check_interval, self._tick, clock)

    def run_once(self, now_ms: int) -> int:
        """Delete what is older than the retention at ``now_ms``; returns chunks deleted."""
        return self.store.delete_before(now_ms - self.retention_ms)

    def _tick(self, now: float) -> None:
        if self.active:
            self.run_once(round(now * 1000))

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float | None = None) -> bool:
        return self._loop.stop(timeout)


class MetricHistory:
    """What the app starts and stops: ``MetricHistory(db, registry, instance="host:8080")``.

    Reads go through :attr:`store` (also :func:`~codequal.tsdb.store.store_for` of the same
    database, which is the same object).
    """

    def __init__(
        self,
        db: Database,
        registry: Collectable,
        *,
        instance: str,
        job: str = DEFAULT_JOB,
        scrape_interval: float = 15.0,
        retention: float = 15 * DAY_SECONDS,
        flush_interval: float = 60.0,
    ) -> None:
        self.store = store_for(db)
        self.scraper = Scraper(
            self.store,
            registry,
            instance=instance,
            job=job,
            interval=scrape_interval,
            flush_interval=flush_interval,
        )
        self.retention = RetentionTask(self.store, retention)

    def start(self) -> None:
        self.scraper.start()
        self.retention.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop both loops and write the in-memory samples, all within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        retention_stopped = self.retention.stop(timeout / 4)
        return self.scraper.stop(max(0.0, deadline - time.monotonic())) and retention_stopped
