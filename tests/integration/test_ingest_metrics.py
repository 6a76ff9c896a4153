"""Metrics in: OTLP/HTTP ``/v1/metrics`` from the real OpenTelemetry exporter and Prometheus
remote write ``/api/v1/write``, both queryable at once through the PromQL API; and every
hostile body refused with a 4xx."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cramjam
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
)
from opentelemetry.sdk.resources import Resource

from codequal.ingest.remote_write import LIMIT, MAX_LABELS
from codequal.tsdb.prompb import WriteRequest

from .test_ingest_server import INGEST, READ, Server, run_server

WRITE_HEADERS = {
    **INGEST,
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    with run_server(tmp_path / "srv", database_url) as running:
        yield running


def query(server: Server, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": promql, "time": str(at if at is not None else time.time())}
    answer = httpx.get(f"{server.base}/api/v1/query", params=params, headers=READ, timeout=30)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def sdk_metrics(temporality: AggregationTemporality | None = None) -> Any:
    """What the real SDK collects for a counter and a histogram of a service 'shop'."""
    preferred = {Counter: temporality, Histogram: temporality} if temporality else {}
    reader = InMemoryMetricReader(preferred_temporality=preferred)  # type: ignore[arg-type]
    resource = Resource.create({"service.name": "shop", "service.instance.id": "shop-1"})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("shop")
    orders = meter.create_counter("shop.orders", unit="{order}")
    latency = meter.create_histogram("shop.checkout.duration", unit="s")
    for seconds in (0.02, 0.3, 0.3, 2.0):
        orders.add(1, {"payment": "card"})
        latency.record(seconds, {"payment": "card"})
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


def test_real_otlp_metric_exporter_lands_in_the_tsdb_and_promql_sees_it(server: Server) -> None:
    exporter = OTLPMetricExporter(
        endpoint=f"{server.base}/v1/metrics", headers=INGEST, compression=Compression.Gzip
    )
    assert exporter.export(sdk_metrics()) == MetricExportResult.SUCCESS
    exporter.shutdown()
    (orders,) = query(server, 'shop_orders_total{job="shop",instance="shop-1"}')
    assert orders["metric"]["payment"] == "card"
    assert orders["metric"]["service_name"] == "shop"
    assert orders["value"][1] == "4"
    (count,) = query(server, "shop_checkout_duration_seconds_count")
    assert count["value"][1] == "4"
    (median,) = query(
        server, "histogram_quantile(0.5, sum by (le) (shop_checkout_duration_seconds_bucket))"
    )
    # The SDK's default boundaries are 0, 5, 10, ...: all four values are in (0, 5], so the
    # median is interpolated half way into that bucket, exactly as Prometheus would.
    assert median["value"][1] == "2.5"
    (info,) = query(server, "target_info")
    assert info["metric"]["telemetry_sdk_language"] == "python"


def test_delta_temporality_is_refused_in_partial_success(server: Server) -> None:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    body = encode_metrics(sdk_metrics(AggregationTemporality.DELTA)).SerializeToString()
    answer = httpx.post(
        f"{server.base}/v1/metrics",
        content=body,
        headers={**INGEST, "Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert answer.status_code == 200
    response = metrics_service_pb2.ExportMetricsServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_data_points == 2
    assert "cumulative" in response.partial_success.error_message
    assert query(server, "shop_orders_total") == []


def write_request(series: dict[str, dict[str, str]], t_ms: int, value: float = 1.0) -> bytes:
    request = WriteRequest()
    for labels in series.values():
        ts = request.timeseries.add()
        for name, label_value in sorted(labels.items()):
            ts.labels.add(name=name, value=label_value)
        ts.samples.add(value=value, timestamp=t_ms)
        ts.samples.add(value=value + 1, timestamp=t_ms + 15_000)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def post_write(server: Server, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/api/v1/write",
        content=body,
        headers={**WRITE_HEADERS, **headers},
        timeout=30,
    )


def test_remote_write_samples_are_queryable_at_once(server: Server) -> None:
    now_ms = int(time.time() * 1000) - 30_000
    series = {
        "a": {"__name__": "up", "job": "node", "instance": "n1:9100"},
        "b": {"__name__": "node_load1", "job": "node", "instance": "n1:9100"},
    }
    answer = post_write(server, write_request(series, now_ms, value=1.0))
    assert answer.status_code == 204, answer.text
    again = post_write(server, write_request(series, now_ms, value=1.0))  # a retried batch
    assert again.status_code == 204
    at = (now_ms + 15_000) / 1000
    assert {r["metric"]["__name__"]: r["value"][1] for r in query(server, '{job="node"}', at)} == {
        "up": "2",
        "node_load1": "2",
    }
    without_scope = post_write(server, write_request(series, now_ms), Authorization="")
    assert without_scope.status_code == 401


def _bomb() -> bytes:
    # A snappy block whose header claims more than the decompressed limit.
    size, varint = LIMIT.decompressed + 1, bytearray()
    while size >= 0x80:
        varint.append((size & 0x7F) | 0x80)
        size >>= 7
    varint.append(size)
    return bytes(varint) + b"\x00" * 16


def _labels(n: int) -> bytes:
    labels = {"__name__": "m", **{f"l{i}": "v" for i in range(n)}}
    return write_request({"s": labels}, 1_000)


HOSTILE_WRITES: dict[str, tuple[bytes, dict[str, str], int]] = {
    "garbage": (b"\x00\xff\xfe garbage {[", {}, 400),
    "truncated-snappy": (write_request({"s": {"__name__": "m"}}, 1)[:-5], {}, 400),
    "not-protobuf": (bytes(cramjam.snappy.compress_raw(b"\xff" * 64)), {}, 400),
    "snappy-bomb": (_bomb(), {}, 413),
    "no-metric-name": (write_request({"s": {"job": "x"}}, 1), {}, 400),
    "bad-label-name": (write_request({"s": {"__name__": "m", "a-b": "x"}}, 1), {}, 400),
    "too-many-labels": (_labels(MAX_LABELS), {}, 400),
    "gzip-not-snappy": (gzip.compress(b"x"), {"Content-Encoding": "gzip"}, 415),
    "json": (b"{}", {"Content-Type": "application/json"}, 415),
}


@pytest.mark.parametrize("variant", list(HOSTILE_WRITES))
def test_hostile_remote_write_bodies_get_a_4xx(server: Server, variant: str) -> None:
    body, headers, expected = HOSTILE_WRITES[variant]
    answer = post_write(server, body, **headers)
    assert answer.status_code == expected, answer.text
    assert answer.json()["detail"]  # every refusal says why
    assert query(server, "m", 1.0) == []
    assert httpx.get(f"{server.base}/live", timeout=10).status_code == 200


HOSTILE_METRICS: dict[str, tuple[bytes, dict[str, str], int]] = {
    "garbage-protobuf": (b"\x00\xff\xfe garbage", {}, 400),
    "garbage-json": (b"{[", {"Content-Type": "application/json"}, 400),
    "wrong-json-shape": (b'{"resourceMetrics": 5}', {"Content-Type": "application/json"}, 400),
    "gzip-header-plain-body": (b"\x0a\x00", {"Content-Encoding": "gzip"}, 400),
    "gzip-bomb": (
        gzip.compress(b"\x00" * (64 * 1024 * 1024 + 1), compresslevel=1),
        {"Content-Encoding": "gzip"},
        413,
    ),
    "text-plain": (b"x", {"Content-Type": "text/plain"}, 415),
}


@pytest.mark.parametrize("variant", list(HOSTILE_METRICS))
def test_hostile_otlp_metric_bodies_get_a_4xx(server: Server, variant: str) -> None:
    body, headers, expected = HOSTILE_METRICS[variant]
    answer = httpx.post(
        f"{server.base}/v1/metrics",
        content=body,
        headers={**INGEST, "Content-Type": "application/x-protobuf", **headers},
        timeout=60,
    )
    assert answer.status_code == expected, answer.text
    assert httpx.get(f"{server.base}/live", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("path", "limit"), [("/api/v1/write", LIMIT.compressed), ("/v1/metrics", 20 * 1024 * 1024)]
)
def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    server: Server, path: str, limit: int
) -> None:
    headers = {**WRITE_HEADERS, "Content-Length": str(limit + 1)}
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode())
        reply = sock.makefile("rb").readline()
    assert reply.startswith(b"HTTP/1.1 413"), reply
