"""The same OpenMetrics history in our store and in the real Prometheus: same answers.

The file is backfilled into Prometheus 2.42 with ``promtool tsdb create-blocks-from
openmetrics`` and into CodeQual with ``import_openmetrics``; both then answer the rule-like
queries below, as instant queries at awkward times and as range queries, and every value must
agree within 1e-9 (relative).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codequal.storage.db import Database
from codequal.tsdb.openmetrics_import import import_openmetrics
from codequal.tsdb.promql import Engine, to_prometheus_json
from codequal.tsdb.store import SampleStore

from ..unit.tsdb.promdata import (
    PrometheusServer,
    assert_same,
    history,
    need_prometheus,
    prometheus_with,
)

START_S = 1_700_000_000
STEPS = 600  # 2.5 h at 15 s
END_S = START_S + (STEPS - 1) * 15

QUERIES = [
    "rate(demo_requests_total[5m])",
    "sum by (mode) (rate(demo_requests_total[5m]))",
    "increase(demo_requests_total[10m])",
    "irate(demo_requests_total[1m])",
    'sum(rate(demo_requests_total{code!="200"}[5m])) / sum(rate(demo_requests_total[5m]))',
    "histogram_quantile(0.9, sum by (le) (rate(demo_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(demo_latency_seconds_bucket[10m]))",
    "rate(demo_latency_seconds_sum[5m]) / rate(demo_latency_seconds_count[5m])",
    "avg_over_time(demo_disk_used_bytes[10m])",
    "max_over_time(demo_disk_used_bytes[30m])",
    "predict_linear(demo_disk_used_bytes[30m], 3600)",
    "deriv(demo_disk_used_bytes[15m])",
    "demo_disk_used_bytes",
    "count by (job) (demo_latency_seconds_bucket)",
]
INSTANTS_S = [START_S + 37 * 60, START_S + 4207, END_S, END_S + 240, END_S + 400]


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.om"
    path.write_text(history(START_S, STEPS))
    return path


@pytest.fixture(scope="module")
def prometheus(
    history_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    need_prometheus()
    with prometheus_with(history_file, tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture
def engine(database: Database, history_file: Path) -> Engine:
    import_openmetrics(database, history_file)
    return Engine(SampleStore(database))


def test_instant_queries_agree_with_prometheus(
    engine: Engine, prometheus: PrometheusServer
) -> None:
    for query in QUERIES:
        for t in INSTANTS_S:
            ours = to_prometheus_json(engine.instant(query, t * 1000))
            assert_same(ours, prometheus.query("query", query=query, time=t), f"{query} @ {t}")


def test_range_queries_agree_with_prometheus(engine: Engine, prometheus: PrometheusServer) -> None:
    start, end = START_S + 120, END_S + 360
    for query in QUERIES:
        for step_s in (60, 37):
            ours = to_prometheus_json(engine.range(query, start * 1000, end * 1000, step_s * 1000))
            theirs = prometheus.query("query_range", query=query, start=start, end=end, step=step_s)
            assert_same(ours, theirs, f"{query} step {step_s}s")
