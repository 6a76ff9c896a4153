"""The resource monitor: wall / CPU / peak-memory accounting per tracked unit of work."""

from __future__ import annotations

import mmap
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from codequal.storage import Database
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.resources import (
    SAMPLER_THREAD_NAME,
    ResourceMonitor,
    ResourceUsage,
)
from codequal.telemetry.stores.work import WorkStore
from codequal.telemetry.tracing import setup_tracing

MiB = 1024 * 1024


class Reading:
    """A reader whose value the test sets: a clock, a CPU counter or an RSS gauge."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


class IntReading(Reading):
    def __call__(self) -> int:
        return int(self.value)


class Readers:
    def __init__(self) -> None:
        self.clock = Reading(100.0)
        self.now = Reading(1_700_000_000.0)
        self.cpu = Reading(5.0)
        self.rss = IntReading(1_000)
        self.max_rss = IntReading(50_000)

    def monitor(
        self, store: WorkStore | None = None, *, high_water: bool = False
    ) -> ResourceMonitor:
        return ResourceMonitor(
            store,
            clock=self.clock,
            now=self.now,
            cpu_reader=self.cpu,
            rss_reader=self.rss,
            max_rss_reader=self.max_rss if high_water else None,
            sample_interval=None,  # the test takes samples itself, with sample_now()
        )


@pytest.fixture
def readers() -> Readers:
    return Readers()


def unique_kind() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_injected_readers_give_exact_wall_cpu_and_peak_delta(readers: Readers) -> None:
    monitor = readers.monitor()
    with monitor.track("analysis", "a-1") as unit:
        readers.clock.value = 102.5
        readers.cpu.value = 6.25
        readers.rss.value = 5_000
        monitor.sample_now()
        readers.rss.value = 2_000  # memory released before the end: the peak still counts

    assert unit.usage == ResourceUsage(
        kind="analysis",
        unit_id="a-1",
        trace_id=None,
        started_at=1_700_000_000.0,
        wall_seconds=2.5,
        cpu_seconds=1.25,
        peak_memory_delta_bytes=4_000,
        outcome="ok",
    )


def test_final_reading_counts_when_memory_is_still_held(readers: Readers) -> None:
    monitor = readers.monitor()
    with monitor.track("analysis", "a-2") as unit:
        readers.rss.value = 3_000

    assert unit.usage is not None
    assert unit.usage.peak_memory_delta_bytes == 2_000


def test_memory_below_the_start_level_is_a_zero_delta(readers: Readers) -> None:
    monitor = readers.monitor()
    with monitor.track("analysis", "a-3") as unit:
        readers.rss.value = 400

    assert unit.usage is not None
    assert unit.usage.peak_memory_delta_bytes == 0


def test_a_new_process_high_water_mark_is_taken_as_the_peak(readers: Readers) -> None:
    # A spike shorter than a sampling tick is invisible to the sampler but raises ru_maxrss.
    monitor = readers.monitor(high_water=True)
    with monitor.track("analysis", "a-4") as unit:
        readers.max_rss.value = 80_000

    assert unit.usage is not None
    assert unit.usage.peak_memory_delta_bytes == 80_000 - 1_000


def test_an_old_high_water_mark_is_not_charged_to_the_unit(readers: Readers) -> None:
    monitor = readers.monitor(high_water=True)
    with monitor.track("analysis", "a-5") as unit:
        readers.rss.value = 1_500

    assert unit.usage is not None
    assert unit.usage.peak_memory_delta_bytes == 500


def test_exception_marks_the_outcome_error_and_propagates(readers: Readers) -> None:
    monitor = readers.monitor()
    with pytest.raises(KeyError), monitor.track("analysis", "a-6") as unit:
        readers.clock.value = 101.0
        raise KeyError("missing")

    assert unit.usage is not None
    assert unit.usage.outcome == "error"
    assert unit.usage.wall_seconds == 1.0


def test_a_failing_reader_never_reaches_the_tracked_code() -> None:
    def broken() -> float:
        raise OSError("no /proc")

    monitor = ResourceMonitor(None, cpu_reader=broken, sample_interval=None)
    ran = False
    with monitor.track("analysis", "a-7") as unit:
        ran = True

    assert ran
    assert unit.usage is None


def test_histograms_are_observed_under_the_units_kind(readers: Readers) -> None:
    kind = unique_kind()
    monitor = readers.monitor()
    with monitor.track(kind, "a-8"):
        readers.clock.value = 103.0
        readers.cpu.value = 5.5
        readers.rss.value = 1_000 + 2 * MiB

    def sample(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"kind": kind})

    assert sample("codequal_work_wall_seconds_sum") == 3.0
    assert sample("codequal_work_wall_seconds_count") == 1.0
    assert sample("codequal_work_cpu_seconds_sum") == 0.5
    assert sample("codequal_work_peak_memory_delta_bytes_sum") == 2 * MiB


def test_usage_carries_the_trace_id_of_the_enclosing_span(readers: Readers) -> None:
    tracing = setup_tracing(
        service="t", version="0", environment="test", span_store=None, otlp_endpoint=None
    )
    monitor = readers.monitor()
    try:
        with tracing.span("analysis") as span, monitor.track("analysis", "a-9") as unit:
            pass
    finally:
        tracing.shutdown()

    assert unit.usage is not None
    assert unit.usage.trace_id == f"{span.get_span_context().trace_id:032x}"


def test_each_run_is_stored_as_a_work_unit_row(readers: Readers, database: Database) -> None:
    store = WorkStore(database)
    monitor = readers.monitor(store)
    with monitor.track("analysis", "pr-42"):
        readers.clock.value = 104.0
    readers.now.value += 10
    with pytest.raises(RuntimeError), monitor.track("analysis", "pr-42"):
        raise RuntimeError("agent failed")
    with monitor.track("analysis", "pr-43"):
        pass
    assert monitor.shutdown(timeout=10)

    rows = store.for_unit("analysis", "pr-42")
    assert [(r.started_at, r.wall_seconds, r.outcome) for r in rows] == [
        (1_700_000_000.0, 4.0, "ok"),
        (1_700_000_010.0, 0.0, "error"),
    ]
    assert rows[0].cpu_seconds == 0.0 and rows[0].peak_memory_delta_bytes == 0


# -- real process readings -------------------------------------------------------------------


def touched_bytes(size: int) -> mmap.mmap:
    """``size`` bytes of fresh anonymous memory with every page written, so they are resident.

    Mapped directly rather than allocated: malloc may hand out memory an earlier test freed
    but kept, which is resident already and would not move RSS at all.
    """
    buffer = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        buffer[offset] = 1
    return buffer


def test_a_50_mib_allocation_shows_in_the_peak_delta() -> None:
    monitor = ResourceMonitor(None)
    with monitor.track("real", "alloc") as unit:
        data = touched_bytes(50 * MiB)
    del data

    assert unit.usage is not None
    assert unit.usage.peak_memory_delta_bytes >= 40 * MiB
    assert unit.usage.wall_seconds > 0


def test_the_sampler_sees_a_peak_freed_before_the_unit_ends() -> None:
    # Without the high-water reader only the sampler thread can have seen this peak.
    monitor = ResourceMonitor(None, max_rss_reader=None, sample_interval=0.01)
    with monitor.track("real", "transient") as unit:
        start = unit.peak_rss
        data = touched_bytes(50 * MiB)
        deadline = time.monotonic() + 5
        while unit.peak_rss < start + 40 * MiB and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting for a real thread's tick, not for a clock
        del data

    assert unit.usage is not None
    assert unit.usage.peak_memory_delta_bytes >= 40 * MiB


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == SAMPLER_THREAD_NAME]


@pytest.fixture
def no_sampler_running() -> Iterator[None]:
    for thread in sampler_threads():
        thread.join(timeout=2)
    yield


@pytest.mark.usefixtures("no_sampler_running")
def test_the_sampler_thread_runs_only_while_units_are_active() -> None:
    monitor = ResourceMonitor(None, sample_interval=0.05)
    assert sampler_threads() == []
    with monitor.track("real", "one"), monitor.track("real", "two"):
        [sampler] = sampler_threads()
    sampler.join(timeout=2)  # the last unit ending wakes it to exit, without waiting a tick
    assert not sampler.is_alive()


def test_cpu_seconds_include_child_processes() -> None:
    monitor = ResourceMonitor(None, sample_interval=None)
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    with monitor.track("real", "child") as unit:
        subprocess.run([sys.executable, "-c", busy], check=True)

    assert unit.usage is not None
    assert unit.usage.cpu_seconds >= 0.25
