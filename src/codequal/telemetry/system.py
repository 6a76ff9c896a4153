"""Process and system CPU / memory gauges, read from psutil when the registry is scraped.

A prometheus_client custom collector: nothing runs between scrapes, and every value is a
reading taken at scrape time. A reading that fails is left out of that scrape (so
``absent()`` can alert on it) instead of failing the whole scrape or reporting a stale value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

Readings = dict[str, float]


class SystemFamily(NamedTuple):
    """One metric the collector exposes."""

    name: str
    type: str  # "counter" or "gauge"
    help: str

    def build(self, value: float | None = None) -> Any:
        """The metric family, with one sample when a value is given (without for describe)."""
        family = CounterMetricFamily if self.type == "counter" else GaugeMetricFamily
        return family(self.name, self.help, value=value)


FAMILIES = (
    SystemFamily(
        "codequal_process_cpu_seconds_total",
        "counter",
        "CPU seconds (user + system) used by this process.",
    ),
    SystemFamily(
        "codequal_process_resident_memory_bytes", "gauge", "Resident memory of this process."
    ),
    SystemFamily("codequal_process_threads", "gauge", "OS threads in this process."),
    SystemFamily(
        "codequal_system_cpu_usage_ratio",
        "gauge",
        "Machine-wide CPU use since the previous reading (scrape), 0..1.",
    ),
    SystemFamily(
        "codequal_system_memory_usage_ratio",
        "gauge",
        "Machine memory in use (total - available) / total, 0..1.",
    ),
    SystemFamily("codequal_system_memory_total_bytes", "gauge", "Total machine memory."),
    SystemFamily(
        "codequal_system_memory_available_bytes",
        "gauge",
        "Machine memory available to new processes without swapping.",
    ),
)


class SystemCollector:
    """Collector for the process and system families above; register it on a registry."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._process = psutil.Process(self._pid)
        # cpu_percent(interval=None) measures since its previous call; the first call only
        # sets the baseline, so make it here and the first scrape reports a real figure.
        psutil.cpu_percent(interval=None)

    def describe(self) -> Iterator[Any]:
        """The families without samples (the registry checks names with this at register)."""
        for family in FAMILIES:
            yield family.build()

    def collect(self) -> Iterator[Any]:
        """One sample per family whose reading succeeded."""
        readings: Readings = {}
        groups: tuple[Callable[[], Readings], ...] = (
            self._process_readings,
            _system_cpu_readings,
            _system_memory_readings,
        )
        for read in groups:
            try:
                readings.update(read())
            # A scrape must never fail because one reading did (psutil raises its own errors,
            # OSError, and on odd platforms others); the group's families are left out.
            except Exception:  # noqa: BLE001, S112
                continue
        for family in FAMILIES:
            if family.name in readings:
                yield family.build(readings[family.name])

    def _process_readings(self) -> Readings:
        if os.getpid() != self._pid:  # forked (e.g. a server worker): read the child, not us
            self._pid = os.getpid()
            self._process = psutil.Process(self._pid)
        with self._process.oneshot():
            cpu = self._process.cpu_times()
            rss = self._process.memory_info().rss
            threads = self._process.num_threads()
        return {
            "codequal_process_cpu_seconds_total": cpu.user + cpu.system,
            "codequal_process_resident_memory_bytes": float(rss),
            "codequal_process_threads": float(threads),
        }


def _system_cpu_readings() -> Readings:
    return {"codequal_system_cpu_usage_ratio": psutil.cpu_percent(interval=None) / 100.0}


def _system_memory_readings() -> Readings:
    memory = psutil.virtual_memory()
    return {
        "codequal_system_memory_usage_ratio": (memory.total - memory.available) / memory.total,
        "codequal_system_memory_total_bytes": float(memory.total),
        "codequal_system_memory_available_bytes": float(memory.available),
    }
