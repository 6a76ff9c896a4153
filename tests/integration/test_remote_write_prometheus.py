"""Remote write out, against the real Prometheus 2.42 started with
``--web.enable-remote-write-receiver`` on a free loopback port; the data is checked with PromQL
there."""

from __future__ import annotations

import contextlib
import math
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codequal.retry import Backoff
from codequal.storage.db import Database, open_database
from codequal.tsdb.promql import STALE_NAN, Labels
from codequal.tsdb.remote_write import RemoteWriteSender, encode, split_credentials
from codequal.tsdb.store import SampleStore

from ..helpers import eventually
from ..unit.tsdb.promdata import (
    PROMETHEUS,
    PrometheusServer,
    _wait_ready,
    free_port,
    need_prometheus,
)
from .test_ingest_metrics import sdk_metrics
from .test_ingest_server import INGEST, run_server


@contextlib.contextmanager
def receiving_prometheus(workdir: Path, port: int) -> Iterator[PrometheusServer]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process)
        with httpx.Client() as client:
            yield PrometheusServer(f"http://127.0.0.1:{port}", client)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'codequal.db'}")
    database.migrate()
    yield database
    database.dispose()


def labels(name: str, **extra: str) -> Labels:
    return Labels.of({"__name__": name, "job": "codequal", "instance": "a:8080", **extra})


def values(prometheus: PrometheusServer, query: str, at: float) -> dict[str, str]:
    result = prometheus.query("query", query=query, time=at)["result"]
    return {r["metric"].get("code", r["metric"]["__name__"]): r["value"][1] for r in result}


def test_the_sender_ships_what_the_store_takes_to_a_real_prometheus(
    tmp_path: Path, db: Database
) -> None:
    need_prometheus()
    port = free_port()
    store = SampleStore(db)
    sender = RemoteWriteSender(
        f"http://127.0.0.1:{port}/api/v1/write",
        tmp_path / "data",
        backoff=Backoff(base=0.05, cap=0.2),
    )
    store.subscribe(sender.offer)
    t0 = (int(time.time()) - 120) * 1000
    ok = labels("http_requests_total", code="200")
    failed = labels("http_requests_total", code="500")
    store.append([(ok, t0, 10.0), (failed, t0, 1.0)])
    store.append([(ok, t0 + 15_000, 12.0), (ok, t0 + 5_000, 99.0)])  # the second: out of order
    store.append([(failed, t0 + 15_000, STALE_NAN)])  # the series went away
    sender.start()  # the receiver is not up yet: the batches wait in the spool, and are retried
    assert not sender.wait_delivered(0.3)
    assert sender.spool.depth() > 0
    with receiving_prometheus(tmp_path / "prometheus", port) as prometheus:
        assert sender.wait_delivered(60)
        at = (t0 + 15_000) / 1000
        assert values(prometheus, "http_requests_total", at) == {"200": "12"}  # 500 is stale
        assert values(prometheus, "http_requests_total", t0 / 1000) == {"200": "10", "500": "1"}
        increase = prometheus.query("query", query="http_requests_total[1m]", time=at)["result"]
        (series,) = [r for r in increase if r["metric"]["code"] == "200"]
        assert [v for _, v in series["values"]] == ["10", "12"]  # 99 (out of order) never sent
    sender.shutdown(5)


def test_what_is_spooled_at_shutdown_goes_out_at_the_next_start(
    tmp_path: Path, db: Database
) -> None:
    need_prometheus()
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/write"
    t0 = (int(time.time()) - 60) * 1000
    first = RemoteWriteSender(url, tmp_path / "data", backoff=Backoff(base=0.05, cap=0.1))
    first.offer([(labels("queue_depth"), t0, 3.0)])
    first.start()
    assert not first.shutdown(0.3)  # nobody listens: the sample stays spooled
    with receiving_prometheus(tmp_path / "prometheus", port) as prometheus:
        second = RemoteWriteSender(url, tmp_path / "data")
        second.start()
        assert second.wait_delivered(60)
        assert values(prometheus, "queue_depth", t0 / 1000) == {"queue_depth": "3"}
        second.shutdown(5)


def test_otlp_metrics_pushed_to_codequal_reach_prometheus(tmp_path: Path) -> None:
    """The whole chain: an OTel SDK -> CodeQual's /v1/metrics -> its TSDB -> remote write."""
    need_prometheus()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    port = free_port()
    with (
        receiving_prometheus(tmp_path / "prometheus", port) as prometheus,
        run_server(
            tmp_path / "srv",
            f"sqlite:///{tmp_path / 'codequal.db'}",
            remote_write_url=f"http://127.0.0.1:{port}/api/v1/write",
        ) as server,
    ):
        sender = server.state.remote_write
        assert sender is not None
        sender.start()  # the test app starts no background work of its own
        exporter = OTLPMetricExporter(endpoint=f"{server.base}/v1/metrics", headers=INGEST)
        exporter.export(sdk_metrics())
        exporter.shutdown()
        assert sender.wait_delivered(60)

        def arrived() -> list[object]:
            found: list[object] = prometheus.query(
                "query", query='shop_orders_total{job="shop"}', time=time.time()
            )["result"]
            return found

        (orders,) = eventually(arrived, what="the counter in Prometheus")
        assert orders["value"][1] == "4"  # type: ignore[index]


def test_credentials_in_the_url_become_basic_auth() -> None:
    url, auth = split_credentials("https://user%40x:p%3Ass@mimir.example:8443/api/v1/push?a=1")
    assert url == "https://mimir.example:8443/api/v1/push?a=1"
    assert auth == ("user@x", "p:ss")
    assert split_credentials("http://127.0.0.1:9090/api/v1/write") == (
        "http://127.0.0.1:9090/api/v1/write",
        None,
    )


def test_stale_markers_keep_their_bits_through_the_spool(tmp_path: Path) -> None:
    sender = RemoteWriteSender("http://127.0.0.1:9/api/v1/write", tmp_path)
    sender.offer([(labels("g"), 1_000, STALE_NAN), (labels("g"), 2_000, 1.5)])
    (record,) = sender.spool.peek(10)
    assert encode([record])  # the spooled record encodes
    ((_, samples),) = record.entry["series"]
    first = struct.pack("<q", samples[0][1])
    assert first == struct.pack("<d", STALE_NAN) and math.isnan(struct.unpack("<d", first)[0])
    sender.shutdown(0.1)
