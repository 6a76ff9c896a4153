"""The DeepWiki metrics collector: real readings at scrape time, never constants.

Registered on the main registry (``/metrics``) and on its own registry, which backs
``/api/monitoring/deepwiki/metrics-prometheus`` and the JSON view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from codequal.analysis.deepwiki import DeepWiki
from codequal.analysis.store import STATUSES, AnalysisStore
from codequal.storage.db import Database
from codequal.telemetry.metrics import DEEPWIKI_AVAILABILITY, REGISTRY


class DeepWikiCollector(Collector):
    """Reads the DeepWiki of the running service (attached at start) on every scrape."""

    def __init__(self) -> None:
        self._deepwiki: DeepWiki | None = None
        self._db: Database | None = None

    def attach(self, deepwiki: DeepWiki, db: Database) -> None:
        self._deepwiki, self._db = deepwiki, db
        DEEPWIKI_AVAILABILITY.set_function(lambda: 1.0 if deepwiki.available() else 0.0)

    def detach(self) -> None:
        self._deepwiki = self._db = None
        DEEPWIKI_AVAILABILITY.set_function(lambda: 0.0)

    def describe(self) -> Iterator[Any]:
        """The families this collector exposes (for the catalogue), with placeholder values."""
        yield from _disk_families(0, 0, 0, 0.0)
        yield from _workspace_families(0, 0)
        yield _status_family({})
        yield from _cleanup_families({}, None)

    def collect(self) -> Iterator[Any]:
        wiki, db = self._deepwiki, self._db
        if wiki is None or db is None:
            return
        yield from _guard(lambda: list(_disk(wiki)))
        yield from _guard(lambda: list(_workspace(wiki)))
        yield from _guard(lambda: [_analyses_by_status(db)])
        yield from _guard(lambda: list(_cleanups(wiki)))


def _guard(read: Callable[[], list[Any]]) -> list[Any]:
    # One failing reading (a disk gone, the database briefly away) must not break the scrape.
    try:
        return read()
    except Exception:  # noqa: BLE001
        return []


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _disk(wiki: DeepWiki) -> Iterator[GaugeMetricFamily]:
    disk = wiki.disk()
    return _disk_families(disk.total, disk.used, disk.free, disk.ratio)


def _disk_families(
    total: float, used: float, free: float, ratio: float
) -> Iterator[GaugeMetricFamily]:
    yield _gauge("codequal_deepwiki_disk_total_bytes", "Workspace volume size.", total)
    yield _gauge(
        "codequal_deepwiki_disk_used_bytes", "Workspace volume bytes in use (df's Used).", used
    )
    yield _gauge(
        "codequal_deepwiki_disk_available_bytes",
        "Workspace volume bytes the server may still write (df's Avail).",
        free,
    )
    yield _gauge(
        "codequal_deepwiki_disk_usage_ratio",
        "Workspace volume used / (used + available), df's Use% (0..1).",
        ratio,
    )


def _workspace(wiki: DeepWiki) -> Iterator[GaugeMetricFamily]:
    return _workspace_families(wiki.workspace_bytes(), wiki.active_repositories())


def _workspace_families(size: float, active: float) -> Iterator[GaugeMetricFamily]:
    yield _gauge("codequal_deepwiki_workspace_bytes", "Bytes under the workspace.", size)
    yield _gauge(
        "codequal_deepwiki_active_repositories",
        "Repositories checked out in the workspace now.",
        active,
    )


def _analyses_by_status(db: Database) -> GaugeMetricFamily:
    return _status_family(AnalysisStore(db).count_by_status())


def _status_family(counts: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "codequal_deepwiki_analyses", "Analyses in the database by status.", labels=["status"]
    )
    for status in STATUSES:
        family.add_metric([status], float(counts.get(status, 0)))
    return family


def _cleanups(wiki: DeepWiki) -> Iterator[Any]:
    counts, last = wiki.cleanup_counts()
    return _cleanup_families(counts, last)


def _cleanup_families(counts: dict[str, int], last: float | None) -> Iterator[Any]:
    family = CounterMetricFamily(
        "codequal_deepwiki_cleanups", "Workspace cleanups by result.", labels=["result"]
    )
    for result in ("success", "failure"):
        family.add_metric([result], float(counts.get(result, 0)))
    yield family
    yield _gauge(
        "codequal_deepwiki_last_cleanup_timestamp_seconds",
        "When the last cleanup ran (Unix time; 0 if never).",
        last or 0.0,
    )


COLLECTOR = DeepWikiCollector()
DEEPWIKI_REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(COLLECTOR)
DEEPWIKI_REGISTRY.register(COLLECTOR)


class _Availability(Collector):
    """Puts the availability gauge in the DeepWiki-only exposition too."""

    def collect(self) -> Iterator[Any]:
        yield from DEEPWIKI_AVAILABILITY.collect()


DEEPWIKI_REGISTRY.register(_Availability())


def snapshot() -> dict[str, Any]:
    """The DeepWiki metrics as JSON: name → value, or {label: value} for labelled ones."""
    out: dict[str, Any] = {}
    for family in DEEPWIKI_REGISTRY.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            if sample.labels:
                key = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out.setdefault(sample.name, {})[key] = sample.value
            else:
                out[sample.name] = sample.value
    return out
