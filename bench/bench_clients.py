"""The field's clients, measured in one run against one ``codequal serve``: OTLP spans over gRPC
next to the same spans over HTTP, OTLP metric points into the TSDB (HTTP and gRPC), and
Prometheus remote write samples.

The server is a subprocess with its own SQLite data dir and the OTLP/gRPC port on a free
loopback port (never 4317). Requests are built and compressed before the clock starts; HTTP
goes over raw keep-alive sockets (bench_ingest's ``blast``), gRPC over one channel per client
thread, so the figures are the server's. Each client sends its own series in time order (a
sample older than its series' newest would be refused, not stored).

Targets: gRPC spans/s >= HTTP spans/s; metric points >= 100 000/s; remote write >= 200 000
samples/s. Run: python bench/bench_clients.py
"""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cramjam
import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from bench_ingest import (
    CLIENTS,
    OTLP_SPANS,
    Result,
    Server,
    blast,
    free_port,
    otlp_request,
    serving,
    token,
)
from codequal.tsdb.prompb import WriteRequest

SPAN_REQUESTS = 60  # of 512 spans, the SDK's default batch
METRIC_REQUESTS, METRIC_SERIES = 100, 2_000  # points per request: one per series
WRITE_REQUESTS, WRITE_SERIES = 150, 2_000  # Prometheus's default max_samples_per_send
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
T0_NS = (int(time.time()) - 3_600) * 1_000_000_000


def metrics_request(client: int, step: int, namespace: str) -> bytes:
    """One export of METRIC_SERIES points: half counters, half gauges, one client's series."""
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    attrs = resource.resource.attributes
    attrs.add(key="service.name").value.string_value = f"{namespace}-{client}"
    scope = resource.scope_metrics.add()
    t = T0_NS + step * 15_000_000_000
    counter = scope.metrics.add(name=f"{namespace}.requests", unit="{request}")
    counter.sum.is_monotonic = True
    counter.sum.aggregation_temporality = 2
    gauge = scope.metrics.add(name=f"{namespace}.queue.depth", unit="1")
    for i in range(METRIC_SERIES // 2):
        for points, value in (
            (counter.sum.data_points, step * 3 + i),
            (gauge.gauge.data_points, i),
        ):
            point = points.add(time_unix_nano=t, as_int=value)
            point.attributes.add(key="route").value.string_value = f"/r/{i}"
    return gzip.compress(request.SerializeToString(), 1)


def write_request(client: int, step: int) -> bytes:
    request = WriteRequest()
    t = T0_NS // 1_000_000 + step * 15_000
    for i in range(WRITE_SERIES):
        series = request.timeseries.add()
        for name, value in (("__name__", "node_cpu_seconds_total"), ("cpu", str(i)),
                            ("instance", f"node-{client}:9100"), ("job", "node")):  # fmt: skip
            series.labels.add(name=name, value=value)
        series.samples.add(timestamp=t, value=float(step * 10 + i))
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def per_client(make: Callable[[int, int], bytes], requests: int) -> list[list[bytes]]:
    """Each client's requests, in time order for its own series."""
    return [[make(c, step) for step in range(requests // CLIENTS)] for c in range(CLIENTS)]


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # an HTTP path or a gRPC method
    bodies: list[list[bytes]]  # per client, in time order
    per_request: int  # items in each request
    headers: dict[str, str] | None = None  # None: sent over gRPC


def run(server: Server, grpc_port: int, case: Case) -> Result:
    n = case.per_request * sum(len(share) for share in case.bodies)
    if case.headers is None:
        seconds, cpu, client = send_grpc(server, grpc_port, case)
    else:
        # blast() deals requests out round robin: interleave, so each client keeps its own.
        flat = [share[s] for s in range(len(case.bodies[0])) for share in case.bodies]
        requests = [(case.target, body, case.headers) for body in flat]
        seconds, cpu, client = blast(server, requests)
    return Result(case.name, n, seconds, cpu=cpu, client_cpu=client)


def send_grpc(server: Server, port: int, case: Case) -> tuple[float, float, float]:
    metadata = (("authorization", f"Bearer {token()}"),)

    def send(share: list[bytes]) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(case.target)
            for body in share:
                call(body, metadata=metadata, timeout=60, compression=grpc.Compression.Gzip)

    raw = [[gzip.decompress(b) for b in share] for share in case.bodies]  # gRPC compresses
    with ThreadPoolExecutor(CLIENTS) as pool:
        client, cpu, start = time.process_time(), server.cpu_seconds(), time.perf_counter()
        list(pool.map(send, raw))
        seconds = time.perf_counter() - start
    return seconds, server.cpu_seconds() - cpu, time.process_time() - client


def cases() -> list[Case]:
    otlp = {"Authorization": f"Bearer {token()}", "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip"}  # fmt: skip
    remote = {**otlp, "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
    return [
        Case("OTLP/HTTP spans (protobuf+gzip)", "/v1/traces",
             per_client(lambda c, s: otlp_request(c * 1000 + s), SPAN_REQUESTS), OTLP_SPANS, otlp),
        Case("OTLP/gRPC spans (gzip)", TRACE_METHOD,
             per_client(lambda c, s: otlp_request(500_000 + c * 1000 + s), SPAN_REQUESTS),
             OTLP_SPANS),
        Case("OTLP/HTTP metric points -> TSDB", "/v1/metrics",
             per_client(lambda c, s: metrics_request(c, s, "http"), METRIC_REQUESTS),
             METRIC_SERIES, otlp),
        Case("OTLP/gRPC metric points -> TSDB", METRICS_METHOD,
             per_client(lambda c, s: metrics_request(c, s, "grpc"), METRIC_REQUESTS),
             METRIC_SERIES),
        Case("remote write samples -> TSDB", "/api/v1/write",
             per_client(write_request, WRITE_REQUESTS), WRITE_SERIES, remote),
    ]  # fmt: skip


def main() -> None:
    grpc_port = free_port()
    os.environ["CODEQUAL_OTLP_GRPC_PORT"] = str(grpc_port)  # never 4317: it may be taken
    todo = cases()  # built and compressed before any clock starts
    with tempfile.TemporaryDirectory() as tmp, serving(Path(tmp)) as server:
        results = [run(server, grpc_port, case) for case in todo]
    report(results)


def report(results: list[Result]) -> None:
    print(f"{'case':<36} {'items':>8} {'seconds':>8} {'items/s':>10} {'server CPU us/item':>19}")
    for r in results:
        print(f"{r.name:<36} {r.items:>8} {r.seconds:>8.2f} {r.rate:>10,.0f} "
              f"{r.cpu_us_per_item:>19.1f}")  # fmt: skip
    http_spans, grpc_spans, metrics_http, metrics_grpc, writes = results
    print()
    ratio = grpc_spans.rate / http_spans.rate
    print(f"gRPC / HTTP spans/s: {ratio:.2f}x (target >= 1): {'ok' if ratio >= 1 else 'MISSED'}")
    for r, target in ((metrics_http, 100_000), (metrics_grpc, 100_000), (writes, 200_000)):
        print(f"{r.name}: {r.rate:,.0f}/s (target >= {target:,}): "
              f"{'ok' if r.rate >= target else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
