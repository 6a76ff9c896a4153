"""Scraping the process's own registry into the store, as Prometheus would scrape /metrics.

No HTTP: ``registry.collect()`` in process. Samples get the target labels ``job`` and
``instance`` (a sample's own ``job``/``instance`` becomes ``exported_job``/``exported_instance``,
Prometheus's ``honor_labels: false``), ``_created`` samples are dropped, and a series present
in the previous scrape but missing from this one gets a staleness marker, so the engine stops
seeing it at once instead of after 5 minutes. ``up``, ``scrape_duration_seconds`` and
``scrape_samples_scraped`` are added as Prometheus adds them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

from sqlalchemy.exc import SQLAlchemyError

from codequal.tsdb.promql import STALE_NAN, Labels
from codequal.tsdb.store import SampleStore

_log = logging.getLogger(__name__)

DEFAULT_JOB = "codequal"
_TARGET_LABELS = ("job", "instance")
# Families whose exposition has a "<name>_created" sample (client_python adds one).
_WITH_CREATED = frozenset({"counter", "histogram", "summary", "gaugehistogram"})


class Collectable(Protocol):
    """What the scraper reads: a prometheus_client ``CollectorRegistry``."""

    def collect(self) -> Iterator[Any]: ...


class ScrapeResult(NamedTuple):
    samples: int  # scraped from the registry (what scrape_samples_scraped reports)
    stale: int  # staleness markers written for series that disappeared
    up: bool


class Periodic:
    """Runs ``task()`` every ``interval`` seconds on a daemon thread until stopped.

    The first run is at the next multiple of the interval since the epoch, and each run is
    told the scheduled time (not the time it woke up), so evenly spaced scrapes store evenly
    spaced timestamps, which compress to nothing. Missed ticks are skipped, not caught up.
    """

    def __init__(
        self, name: str, interval: float, task: Callable[[float], None], clock: Callable[[], float]
    ) -> None:
        if interval <= 0:
            raise ValueError(f"{name}: the interval must be positive, got {interval}")
        self._name, self._interval, self._task, self._clock = name, interval, task, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to end and wait up to ``timeout``; False if it is still running."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self) -> None:
        tick = (self._clock() // self._interval + 1) * self._interval
        while not self._stop.wait(max(0.0, tick - self._clock())):
            try:
                self._task(tick)
            except Exception:  # noqa: BLE001 - a failed round must not end the loop
                _log.exception("%s failed", self._name)
            now = self._clock()
            tick += self._interval
            if tick <= now:  # fell behind (a suspended VM, a slow database): skip ahead
                tick = (now // self._interval + 1) * self._interval


class Scraper:
    """Collects ``registry`` into ``store`` every ``interval`` seconds (or on ``scrape_once``)."""

    def __init__(
        self,
        store: SampleStore,
        registry: Collectable,
        *,
        instance: str,
        job: str = DEFAULT_JOB,
        interval: float = 15.0,
        flush_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.registry = registry
        self.interval = interval
        self._target = {"job": job, "instance": instance}
        self.target = dict(self._target)  # for display; the scrape uses its own copy
        self._flush_every = flush_interval
        self._previous: set[Labels] = set()
        self._last_flush = 0.0
        self._clock = clock
        self._loop = Periodic("tsdb-scraper", interval, self._tick, clock)

    def scrape_once(self, now_ms: int) -> ScrapeResult:
        """Collect, stamp every sample with ``now_ms``, mark vanished series stale."""
        started = time.perf_counter()
        try:
            current = dict(self._collect())
        except Exception:  # noqa: BLE001 - a broken collector: up=0 and all stale, as Prometheus
            _log.exception("collecting the metrics registry failed")
            current = {}
            up = False
        else:
            up = True
        scraped = len(current)
        current.update(self._report(up, time.perf_counter() - started, scraped))
        gone = self._previous - current.keys()
        batch = [(labels, now_ms, value) for labels, value in current.items()]
        batch.extend((labels, now_ms, STALE_NAN) for labels in gone)
        self.store.append_resolved(batch)
        self._previous = set(current)
        return ScrapeResult(scraped, len(gone), up)

    def _collect(self) -> Iterator[tuple[Labels, float]]:
        for family in self.registry.collect():
            created = f"{family.name}_created" if family.type in _WITH_CREATED else None
            for sample in family.samples:
                if sample.name == created:
                    continue
                yield self._labels(sample.name, sample.labels), float(sample.value)

    def _labels(self, name: str, own: dict[str, str]) -> Labels:
        pairs = {f"exported_{k}" if k in _TARGET_LABELS else k: v for k, v in own.items()}
        pairs.update(self._target)
        pairs["__name__"] = name
        return Labels.of(pairs)

    def _report(self, up: bool, seconds: float, scraped: int) -> dict[Labels, float]:
        return {
            self._labels("up", {}): 1.0 if up else 0.0,
            self._labels("scrape_duration_seconds", {}): seconds,
            self._labels("scrape_samples_scraped", {}): float(scraped),
        }

    def _tick(self, scheduled: float) -> None:
        self.scrape_once(round(scheduled * 1000))
        if scheduled - self._last_flush >= self._flush_every:
            self.store.flush(timeout=self.interval)
            self._last_flush = scheduled

    def start(self) -> None:
        """Scrape once now, then on a background thread, flushing every ``flush_interval``.

        The scrape at start is the baseline: counters initialised to zero are stored as zero
        before the server accepts work, so what happens before the first tick on the grid
        (up to one interval later) shows in ``rate()`` and ``increase()`` instead of being the
        first value of a series that has never moved.
        """
        self.scrape_once(round(self._clock() * 1000))
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop scraping, then write what is in memory within what is left of ``timeout``."""
        deadline = time.monotonic() + timeout
        stopped = self._loop.stop(timeout)
        try:
            result = self.store.flush(timeout=max(0.0, deadline - time.monotonic()))
        except SQLAlchemyError:
            _log.exception("tsdb: writing the in-memory samples at shutdown failed")
            return False
        if result.remaining:
            _log.warning("tsdb: %d chunks not written before the deadline", result.remaining)
        return stopped and not result.remaining
