"""Per-unit-of-work resource accounting: wall time, CPU seconds and peak memory delta.

``monitor.track("analysis", analysis_id)`` measures the block, observes the
``codequal_work_*`` histograms, queues a ``work_units`` row (a background writer stores it)
and leaves a :class:`ResourceUsage` on the yielded unit. Nothing here raises into, or waits
inside, the tracked code.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

import psutil

from codequal.telemetry._worker import BatchWorker
from codequal.telemetry.context import current_trace_id
from codequal.telemetry.metrics import SINK_ERRORS, WORK_CPU, WORK_MEMORY, WORK_WALL
from codequal.telemetry.stores.work import WorkStore, WorkUnitRecord

if sys.platform != "win32":
    import resource

_log = logging.getLogger(__name__)

# The stored row and the usage handed back to the caller are the same record.
ResourceUsage = WorkUnitRecord

SAMPLE_INTERVAL_SECONDS = 0.05
SAMPLER_THREAD_NAME = "cq-rss-sampler"


def process_cpu_seconds() -> float:
    """User + system CPU of this process and of its waited-for child processes (git, ruff).

    This is process-wide: when units of work overlap on several threads, each unit's delta
    also contains the other threads' CPU over the same interval.
    """
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@lru_cache(maxsize=1)
def _process(pid: int) -> psutil.Process:
    return psutil.Process(pid)


def current_rss_bytes() -> int:
    """Resident set size of this process now."""
    # Keyed by pid so a forked worker measures itself, not its parent.
    return int(_process(os.getpid()).memory_info().rss)


def max_rss_bytes() -> int:
    """The process's lifetime peak RSS (``ru_maxrss``); 0 where the platform lacks it."""
    if sys.platform == "win32":
        return 0
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class TrackedUnit:
    """The handle ``track`` yields; ``usage`` is set when the block ends."""

    __slots__ = (
        "_cpu0",
        "_hwm0",
        "_measured",
        "_rss0",
        "_t0",
        "kind",
        "peak_rss",
        "started_at",
        "trace_id",
        "unit_id",
        "usage",
    )

    def __init__(self, kind: str, unit_id: str, trace_id: str | None, started_at: float) -> None:
        self.kind = kind
        self.unit_id = unit_id
        self.trace_id = trace_id
        self.started_at = started_at
        self.usage: ResourceUsage | None = None
        self.peak_rss = 0
        self._t0 = self._cpu0 = 0.0
        self._rss0 = self._hwm0 = 0
        self._measured = False  # False when the start readings failed: nothing to record

    def observe(self, rss: int) -> None:
        self.peak_rss = max(self.peak_rss, rss)


class _PeakSampler:
    """One thread samples RSS for every active unit; it exists only while units are active."""

    def __init__(self, read_rss: Callable[[], int], interval: float | None) -> None:
        self._read = read_rss
        self._interval = interval
        self._lock = threading.Lock()
        self._units: set[TrackedUnit] = set()
        self._running = False
        self._wake = threading.Event()

    def add(self, unit: TrackedUnit) -> None:
        with self._lock:
            self._units.add(unit)
            if self._interval is not None and not self._running:
                self._running = True
                threading.Thread(target=self._run, name=SAMPLER_THREAD_NAME, daemon=True).start()

    def discard(self, unit: TrackedUnit) -> None:
        with self._lock:
            self._units.discard(unit)
            if not self._units:
                self._wake.set()  # let the thread notice now rather than after a tick

    def sample(self) -> None:
        with self._lock:
            units = tuple(self._units)
        if units:
            rss = self._read()
            for unit in units:
                unit.observe(rss)

    def _run(self) -> None:
        interval = self._interval or SAMPLE_INTERVAL_SECONDS
        while True:
            with self._lock:
                if not self._units:
                    self._running = False
                    return
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a failed reading skips one tick
                _log.debug("RSS sample failed", exc_info=True)
            self._wake.wait(interval)
            self._wake.clear()


class ResourceMonitor:
    """Measures tracked units of work and records them as metrics and ``work_units`` rows.

    The readers are injectable so tests can assert exact values: ``clock`` (monotonic
    seconds, for wall time), ``now`` (epoch seconds, for ``started_at``), ``cpu_reader``
    (process CPU seconds), ``rss_reader`` (current RSS bytes) and ``max_rss_reader`` (the
    process's lifetime peak RSS, which catches a spike shorter than a sampling interval;
    None disables it). ``sample_interval`` None disables the sampler thread; then peaks come
    from the start and end readings and from :meth:`sample_now`.
    """

    def __init__(
        self,
        store: WorkStore | None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        now: Callable[[], float] = time.time,
        cpu_reader: Callable[[], float] = process_cpu_seconds,
        rss_reader: Callable[[], int] = current_rss_bytes,
        max_rss_reader: Callable[[], int] | None = max_rss_bytes,
        sample_interval: float | None = SAMPLE_INTERVAL_SECONDS,
        max_queue: int = 10_000,
    ) -> None:
        self._clock = clock
        self._now = now
        self._cpu = cpu_reader
        self._rss = rss_reader
        self._max_rss = max_rss_reader
        self._sampler = _PeakSampler(rss_reader, sample_interval)
        self._worker: BatchWorker[WorkUnitRecord] | None = None
        if store is not None:
            self._worker = BatchWorker(
                "work-units", store.write, max_queue=max_queue, on_error=_count_store_error
            )
            self._worker.start()

    @contextmanager
    def track(self, kind: str, unit_id: str) -> Iterator[TrackedUnit]:
        """Measure the ``with`` block as one run of ``(kind, unit_id)``.

        The outcome is ``ok`` unless an exception leaves the block (it propagates unchanged).
        """
        unit = self._begin(kind, unit_id)
        outcome = "error"
        try:
            yield unit
            outcome = "ok"
        finally:
            self._finish(unit, outcome)

    def sample_now(self) -> None:
        """Take one RSS reading for every active unit (what the sampler thread does per tick)."""
        try:
            self._sampler.sample()
        except Exception:  # noqa: BLE001 - telemetry never raises into the caller
            _log.debug("RSS sample failed", exc_info=True)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every finished unit is stored; False on timeout."""
        return self._worker.flush(timeout) if self._worker is not None else True

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Store what is queued (with a deadline) and stop the writer."""
        return self._worker.stop(timeout) if self._worker is not None else True

    def _begin(self, kind: str, unit_id: str) -> TrackedUnit:
        unit = TrackedUnit(kind, unit_id, current_trace_id(), 0.0)
        try:
            unit.started_at = self._now()
            unit._rss0 = unit.peak_rss = self._rss()
            unit._hwm0 = self._max_rss() if self._max_rss is not None else 0
            unit._cpu0 = self._cpu()
            unit._t0 = self._clock()  # last, so our own readings stay out of the wall time
            self._sampler.add(unit)
            unit._measured = True
        except Exception:  # noqa: BLE001 - the unit runs unmeasured rather than failing
            _log.warning("could not start measuring %s %s", kind, unit_id, exc_info=True)
        return unit

    def _finish(self, unit: TrackedUnit, outcome: str) -> None:
        self._sampler.discard(unit)
        if not unit._measured:
            return
        try:
            unit.usage = self._measure(unit, outcome)
            self._record(unit.usage)
        except Exception:  # noqa: BLE001 - telemetry never raises into the caller
            _log.warning("could not record %s %s", unit.kind, unit.unit_id, exc_info=True)

    def _measure(self, unit: TrackedUnit, outcome: str) -> ResourceUsage:
        wall = self._clock() - unit._t0
        cpu = self._cpu() - unit._cpu0
        # Local, not via observe(): the sampler may still write peak_rss from its last tick.
        peak = max(unit.peak_rss, self._rss())
        if self._max_rss is not None:
            high_water = self._max_rss()
            if high_water > unit._hwm0:  # the process set a new peak during this unit
                peak = max(peak, high_water)
        return ResourceUsage(
            kind=unit.kind,
            unit_id=unit.unit_id,
            trace_id=unit.trace_id,
            started_at=unit.started_at,
            wall_seconds=wall,
            cpu_seconds=max(0.0, cpu),
            peak_memory_delta_bytes=max(0, peak - unit._rss0),
            outcome=outcome,
        )

    def _record(self, usage: ResourceUsage) -> None:
        WORK_WALL.labels(kind=usage.kind).observe(usage.wall_seconds)
        WORK_CPU.labels(kind=usage.kind).observe(usage.cpu_seconds)
        WORK_MEMORY.labels(kind=usage.kind).observe(usage.peak_memory_delta_bytes)
        if self._worker is not None:
            self._worker.submit(usage)


def _count_store_error(exc: BaseException) -> None:
    SINK_ERRORS.labels(sink="work_units").inc()
    _log.warning("could not store work units: %s", exc)
