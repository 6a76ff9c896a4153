"""Scraping the real metrics registry into the store, driven with explicit times."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge

from codequal.storage.db import Database
from codequal.storage.schema import tsdb_chunks
from codequal.telemetry.metrics import HTTP_DURATION, HTTP_REQUESTS, REGISTRY
from codequal.tsdb.promql import Engine, Labels, Matcher, MatchOp, Vector, is_stale
from codequal.tsdb.scrape import Scraper
from codequal.tsdb.service import MetricHistory, RetentionTask
from codequal.tsdb.store import SampleStore, store_for

T0 = 1_800_000_000_000
STEP = 15_000
ROUTE = "/tsdb-scrape-test"
TARGET = 'instance="host-a:8080", job="codequal"'


@pytest.fixture
def store(database: Database) -> SampleStore:
    return SampleStore(database)


@pytest.fixture
def route() -> Iterator[str]:
    """A route label of its own on the real HTTP metrics, removed afterwards."""
    yield ROUTE
    for status in ("200", "500"):
        with contextlib.suppress(KeyError):
            HTTP_REQUESTS.remove("GET", ROUTE, status)
    with contextlib.suppress(KeyError):
        HTTP_DURATION.remove("GET", ROUTE)


def values(engine: Engine, query: str, t: int) -> dict[str, float]:
    result = engine.instant(query, t)
    assert isinstance(result, Vector)
    return {str(s.labels): s.value for s in result}


def test_rate_and_quantiles_over_the_scraped_registry(store: SampleStore, route: str) -> None:
    scraper = Scraper(store, REGISTRY, instance="host-a:8080")
    for i in range(6):
        scraper.scrape_once(T0 + i * STEP)
        for _ in range(3):  # 3 requests per 15 s: 0.2 per second
            HTTP_REQUESTS.labels("GET", route, "200").inc()
            HTTP_DURATION.labels("GET", route).observe(0.3)
    store.flush()
    engine = Engine(store)
    at = T0 + 4 * STEP
    rate = f'rate(codequal_http_requests_total{{route="{route}"}}[1m])'
    assert values(engine, rate, at) == {
        f'{{{TARGET}, method="GET", route="{route}", status="200"}}': pytest.approx(0.2)
    }
    p50 = (
        "histogram_quantile(0.5, sum by (le) (rate("
        f'codequal_http_request_duration_seconds_bucket{{route="{route}"}}[1m])))'
    )
    assert values(engine, p50, at) == {"{}": pytest.approx(0.25 + 0.25 * 0.5)}
    assert values(engine, f"up{{{TARGET}}}", at) == {f'{{__name__="up", {TARGET}}}': 1.0}
    scraped = values(engine, "scrape_samples_scraped", at)
    assert next(iter(scraped.values())) > 20


def test_created_samples_are_dropped_and_counters_keep_total(
    store: SampleStore, route: str
) -> None:
    HTTP_REQUESTS.labels("GET", route, "200").inc()
    HTTP_DURATION.labels("GET", route).observe(0.1)
    Scraper(store, REGISTRY, instance="a:1").scrape_once(T0)
    names = set(store.label_values("__name__"))
    assert "codequal_http_requests_total" in names
    assert "codequal_http_request_duration_seconds_bucket" in names
    assert not any(name.endswith("_created") for name in names)


def test_a_series_that_disappears_is_stale_at_the_next_scrape(
    store: SampleStore, route: str
) -> None:
    scraper = Scraper(store, REGISTRY, instance="a:1")
    HTTP_REQUESTS.labels("GET", route, "500").inc()
    scraper.scrape_once(T0)
    scraper.scrape_once(T0 + STEP)
    HTTP_REQUESTS.remove("GET", route, "500")
    result = scraper.scrape_once(T0 + 2 * STEP)
    assert result.stale >= 1
    store.flush()
    query = f'codequal_http_requests_total{{route="{route}", status="500"}}'
    engine = Engine(store)
    assert len(values(engine, query, T0 + STEP)) == 1
    assert values(engine, query, T0 + 2 * STEP) == {}  # gone at once, not after 5 minutes
    matchers = [Matcher(MatchOp.EQUAL, "route", route), Matcher(MatchOp.EQUAL, "status", "500")]
    (series,) = store.select(matchers, T0, T0 + 3 * STEP)
    assert is_stale(series.values[-1])
    scraper.scrape_once(T0 + 3 * STEP)  # and only one marker
    assert len(store.select(matchers, T0, T0 + 4 * STEP)[0].values) == 3


def test_target_labels_win_and_the_series_own_move_to_exported(store: SampleStore) -> None:
    registry = CollectorRegistry()
    Gauge("temp", "t", ["instance", "job", "zone"], registry=registry).labels("x", "y", "z").set(3)
    Counter("hits", "h", registry=registry).inc(2)
    Scraper(store, registry, instance="me:1", job="cq").scrape_once(T0)
    assert store.series([Matcher(MatchOp.REGEX, "__name__", "temp|hits_total")]) == sorted(
        [
            Labels.of({"__name__": "hits_total", "instance": "me:1", "job": "cq"}),
            Labels.of(
                {
                    "__name__": "temp",
                    "instance": "me:1",
                    "job": "cq",
                    "zone": "z",
                    "exported_instance": "x",
                    "exported_job": "y",
                }
            ),
        ]
    )


class _Broken:
    def collect(self) -> Iterator[Any]:
        raise RuntimeError("collector crashed")


def test_a_failed_scrape_reports_up_0_and_marks_everything_stale(store: SampleStore) -> None:
    registry = CollectorRegistry()
    Gauge("temp", "t", registry=registry).set(1)
    scraper = Scraper(store, registry, instance="a:1")
    scraper.scrape_once(T0)
    scraper.registry = _Broken()
    result = scraper.scrape_once(T0 + STEP)
    assert result.up is False and result.samples == 0
    engine = Engine(store)
    assert values(engine, "up", T0 + STEP) == {'{__name__="up", instance="a:1", job="codequal"}': 0}
    assert values(engine, "temp", T0 + STEP) == {}


def test_the_background_loop_scrapes_on_the_interval_grid_and_flushes_on_stop(
    database: Database, store: SampleStore
) -> None:
    registry = CollectorRegistry()
    Gauge("temp", "t", registry=registry).set(1)
    # Each look at the clock is 20 s later: every wait is already over, no test time passes.
    ticks = iter(range(1_800_000_000, 1_900_000_000, 20))
    scraped = threading.Event()
    scraper = Scraper(store, registry, instance="a:1", interval=15, clock=lambda: next(ticks))
    real = scraper.scrape_once

    def counting(now_ms: int) -> Any:
        result = real(now_ms)
        if len(store.select([Matcher(MatchOp.EQUAL, "__name__", "temp")], 0, 2**62)[0].values) >= 3:
            scraped.set()
        return result

    scraper.scrape_once = counting  # type: ignore[method-assign]
    scraper.start()
    assert scraped.wait(10)
    assert scraper.stop(timeout=10)
    (series,) = SampleStore(database).select([Matcher(MatchOp.EQUAL, "__name__", "temp")], 0, 2**62)
    assert len(series.timestamps) >= 3
    assert all(t % STEP == 0 for t in series.timestamps)  # the schedule, not the wake-up time


def test_retention_task_deletes_what_is_older_than_the_retention(
    database: Database, store: SampleStore
) -> None:
    registry = CollectorRegistry()
    Gauge("temp", "t", registry=registry).set(1)
    scraper = Scraper(store, registry, instance="a:1")
    day = 86_400_000
    for i in range(0, 3 * day, 3_600_000):
        scraper.scrape_once(T0 + i)
    store.flush()
    task = RetentionTask(store, retention=1.5 * 86_400)
    assert task.run_once(T0 + 3 * day) > 0
    with database.engine.connect() as conn:
        oldest = conn.execute(sa.select(sa.func.min(tsdb_chunks.c.max_t))).scalar_one()
    assert oldest >= T0 + 3 * day - 1.5 * day
    (series,) = store.select([Matcher(MatchOp.EQUAL, "__name__", "temp")], 0, 2**62)
    assert series.timestamps[0] >= T0 + day


def test_metric_history_shares_the_process_store_and_stops_cleanly(database: Database) -> None:
    registry = CollectorRegistry()  # empty: the scrape at start stores only up and its kin
    history = MetricHistory(database, registry, instance="a:1", scrape_interval=3600)
    assert history.store is store_for(database)
    history.start()
    history.store.append([({"__name__": "temp", "instance": "a:1"}, T0, 1.0)])
    assert history.stop(timeout=10)  # the loops end and the sample is written
    (series,) = SampleStore(database).select([Matcher(MatchOp.EQUAL, "__name__", "temp")], 0, T0)
    assert series.points() == [(T0, 1.0)]


def test_work_done_before_the_first_tick_shows_in_rate(store: SampleStore) -> None:
    """A server that counts three analyses before its first scheduled scrape still shows them:
    the scrape at start stored the zero the counter was initialised to."""
    registry = CollectorRegistry()
    analyses = Counter("analyses", "a", registry=registry)
    scraper = Scraper(store, registry, instance="a:1", interval=3600, clock=lambda: T0 / 1000)
    scraper.start()
    try:
        analyses.inc(3)  # before the loop's first tick, an hour away
        scraper.scrape_once(T0 + STEP)
    finally:
        assert scraper.stop(timeout=10)
    rate = values(Engine(store), "increase(analyses_total[1m])", T0 + STEP)
    (increase,) = rate.values()
    assert increase > 0
