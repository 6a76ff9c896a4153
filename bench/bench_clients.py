"""The field's clients, measured in one run against one ``codequal serve``: OTLP spans over gRPC
next to the same spans over HTTP, OTLP metric points into the TSDB (HTTP and gRPC), and
Prometheus remote write samples: a new client's first requests (each of its 2 000 series is
created) and then the same clients' next requests (every series known, Prometheus's steady
state).

The server is a subprocess with its own SQLite data dir and the OTLP/gRPC port on a free
loopback port (never 4317). Requests are built and compressed before the clock starts; HTTP
goes over raw keep-alive sockets (bench_ingest's ``blast``), gRPC over one channel per client
thread, so the figures are the server's. Each client sends its own series in time order (a
sample older than its series' newest would be refused, not stored).

This machine's speed wanders (the same CPU-bound loop takes 0.32-0.52 s from one run to the
next), so every case runs REPEATS times, interleaved with the others, each time with series of
its own (so each remote write and OTLP metrics run creates its series, as a new client's first
requests do); the table gives the median, the slowest and fastest runs. The server flushes its
metric heads every minute, re-encoding each chunk that took samples since the last flush: that
work is part of ingest and lands in whichever case is running.

Next to each case, the same run reads the same bodies with the raw libraries, in this process
and one thread: decompress, parse with protobuf (upb), and read every item's fields, storing
nothing. "x raw" is the server's rate over that one, both medians: above 1, the server receives,
checks and stores the items faster than the raw library alone can read them in Python. The
ratio moves much less with the machine's speed than either rate does.

The two span cases of a run go one right after the other (which goes first alternates), so
gRPC against HTTP is judged on each run's own ratio, the median of those: the ratio of the
two medians would mix runs minutes apart, and the machine's drift between them.

Targets: gRPC spans/s >= HTTP spans/s (median of the runs' ratios); metric points >= 100 000/s;
remote write >= 200 000 samples/s (medians), on the embedded SQLite store. ``--database-url``
runs the same cases on another database (an empty PostgreSQL one: OTLP/gRPC then serves its
calls with threads, see codequal.api.otlp_grpc). Run: python bench/bench_clients.py
[--repeats N] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cramjam
import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

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

SPAN_REQUESTS = 240  # of 512 spans, the SDK's default batch: 2-5 s a case, longer than noise
METRIC_REQUESTS, METRIC_SERIES = 100, 2_000  # points per request: one per series
WRITE_REQUESTS, WRITE_SERIES = 150, 2_000  # Prometheus's default max_samples_per_send
WRITE_STEPS = WRITE_REQUESTS // CLIENTS  # requests per client in one case
REPEATS = 4
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


def write_request(client: int, step: int, run: int = 0) -> bytes:
    request = WriteRequest()
    t = T0_NS // 1_000_000 + step * 15_000
    for i in range(WRITE_SERIES):
        series = request.timeseries.add()
        instance = f"node-{client}-{run}:9100"
        for name, value in (("__name__", "node_cpu_seconds_total"), ("cpu", str(i)),
                            ("instance", instance), ("job", "node")):  # fmt: skip
            series.labels.add(name=name, value=value)
        series.samples.add(timestamp=t, value=float(step * 10 + i))
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


# -- the raw libraries alone: what reading the same bodies costs before storing anything ----
def raw_spans(body: bytes) -> int:
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(gzip.decompress(body))
    n = 0
    for resource in request.resource_spans:
        _attributes(resource.resource.attributes)
        for scope in resource.scope_spans:
            for span in scope.spans:
                _ = (span.trace_id, span.span_id, span.parent_span_id, span.name, span.kind)
                _ = (span.start_time_unix_nano, span.end_time_unix_nano, span.status.code)
                _attributes(span.attributes)
                n += 1
    return n


def raw_points(body: bytes) -> int:
    request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(gzip.decompress(body))
    n = 0
    for resource in request.resource_metrics:
        _attributes(resource.resource.attributes)
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                _ = (metric.name, metric.unit)
                for point in getattr(metric, str(metric.WhichOneof("data"))).data_points:
                    _attributes(point.attributes)
                    _ = (point.time_unix_nano, getattr(point, point.WhichOneof("value")))
                    n += 1
    return n


def raw_samples(body: bytes) -> int:
    request = WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(body)))
    n = 0
    for series in request.timeseries:
        _ = [(label.name, label.value) for label in series.labels]
        for sample in series.samples:
            _ = (sample.timestamp, sample.value)
            n += 1
    return n


def _attributes(pairs: Iterable[Any]) -> None:
    for kv in pairs:
        _ = (kv.key, getattr(kv.value, kv.value.WhichOneof("value")))


def raw_rate(case: Case) -> float:
    """Items a second the raw libraries read from the case's bodies, in this thread."""
    start = time.process_time()
    n = sum(case.raw(body) for share in case.bodies for body in share)
    return n / (time.process_time() - start)


def per_client(make: Callable[[int, int], bytes], requests: int) -> list[list[bytes]]:
    """Each client's requests, in time order for its own series."""
    return [[make(c, step) for step in range(requests // CLIENTS)] for c in range(CLIENTS)]


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # an HTTP path or a gRPC method
    bodies: list[list[bytes]]  # per client, in time order
    per_request: int  # items in each request
    raw: Callable[[bytes], int]  # the raw libraries reading one body
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


def cases(run: int) -> list[Case]:
    """The cases of one run; series (and span ids) of that run's own. Remote write runs twice:
    the first requests of new clients (each creates its 2 000 series), then their next ones."""
    otlp = {"Authorization": f"Bearer {token()}", "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip"}  # fmt: skip
    remote = {**otlp, "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
    spans = run * 1_000_000
    return [
        Case("OTLP/HTTP spans (protobuf+gzip)", "/v1/traces",
             per_client(lambda c, s: otlp_request(spans + c * 1000 + s), SPAN_REQUESTS),
             OTLP_SPANS, raw_spans, otlp),
        Case("OTLP/gRPC spans (gzip)", TRACE_METHOD,
             per_client(lambda c, s: otlp_request(spans + 500_000 + c * 1000 + s), SPAN_REQUESTS),
             OTLP_SPANS, raw_spans),
        Case("OTLP/HTTP metric points -> TSDB", "/v1/metrics",
             per_client(lambda c, s: metrics_request(c, s, f"http{run}"), METRIC_REQUESTS),
             METRIC_SERIES, raw_points, otlp),
        Case("OTLP/gRPC metric points -> TSDB", METRICS_METHOD,
             per_client(lambda c, s: metrics_request(c, s, f"grpc{run}"), METRIC_REQUESTS),
             METRIC_SERIES, raw_points),
        Case("remote write samples -> TSDB", "/api/v1/write",
             per_client(lambda c, s: write_request(c, s, run), WRITE_REQUESTS), WRITE_SERIES,
             raw_samples, remote),
        # The same clients' next requests: what a Prometheus sends once its series exist.
        Case("remote write, series known", "/api/v1/write",
             per_client(lambda c, s: write_request(c, s + WRITE_STEPS, run), WRITE_REQUESTS),
             WRITE_SERIES, raw_samples, remote),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each case")
    parser.add_argument("--database-url", help="an empty database (default: SQLite in a temp dir)")
    args = parser.parse_args()
    settings = {"CODEQUAL_DATABASE_URL": args.database_url} if args.database_url else {}
    grpc_port = free_port()
    os.environ["CODEQUAL_OTLP_GRPC_PORT"] = str(grpc_port)  # never 4317: it may be taken
    todo = [cases(run) for run in range(args.repeats)]  # built before any clock starts
    results: list[list[Result]] = [[] for _ in todo[0]]
    raw: list[list[float]] = [[] for _ in todo[0]]
    with tempfile.TemporaryDirectory() as tmp, serving(Path(tmp), **settings) as server:
        for n, run_cases in enumerate(todo):  # run 1 of every case, then run 2, ...
            # HTTP and gRPC take turns at going first, so neither always follows the remote
            # write cases (and a head flush they started).
            order = [1, 0, 3, 2, 4, 5] if n % 2 else [0, 1, 2, 3, 4, 5]
            for i in order:
                results[i].append(run(server, grpc_port, run_cases[i]))
                raw[i].append(raw_rate(run_cases[i]))  # right after: the machine's same mood
    report(results, raw)


def report(results: list[list[Result]], raw: list[list[float]]) -> None:
    print(f"{'case':<36} {'items':>8} {'items/s (median)':>17} {'slowest-fastest':>17} "
          f"{'server CPU us/item':>19} {'raw read/s':>11} {'x raw':>6}")  # fmt: skip
    medians = []
    for runs, raw_rates in zip(results, raw, strict=True):
        rates = sorted(r.rate for r in runs)
        rate = statistics.median(rates)
        cpu = statistics.median(r.cpu_us_per_item for r in runs)
        medians.append(rate)
        spread = f"{rates[0] / 1000:,.0f}k-{rates[-1] / 1000:,.0f}k"
        base = statistics.median(raw_rates)
        print(f"{runs[0].name:<36} {runs[0].items:>8} {rate:>17,.0f} {spread:>17} {cpu:>19.1f} "
              f"{base:>11,.0f} {rate / base:>6.2f}")  # fmt: skip
    _, _, metrics_http, metrics_grpc, writes, known = medians
    print(f"\n{len(results[0])} runs of each case; targets are judged on the medians.")
    # Run n of each span case ran right after the other's: the ratio within each pair is free
    # of the machine's drift from one pair to the next.
    pairs = [g.rate / h.rate for h, g in zip(results[0], results[1], strict=True)]
    ratio = statistics.median(pairs)
    cpu = statistics.median(h.cpu / g.cpu for h, g in zip(results[0], results[1], strict=True))
    print(f"gRPC / HTTP spans/s, run by run: {' '.join(f'{r:.2f}' for r in pairs)}; "
          f"server CPU a span, HTTP / gRPC: {cpu:.2f}x")  # fmt: skip
    print(f"gRPC / HTTP spans/s (median of the runs' ratios): {ratio:.2f}x (target >= 1): "
          f"{'ok' if ratio >= 1 else 'MISSED'}")  # fmt: skip
    for runs, rate, target in ((results[2], metrics_http, 100_000),
                               (results[3], metrics_grpc, 100_000),
                               (results[4], writes, 200_000),
                               (results[5], known, 200_000)):  # fmt: skip
        print(f"{runs[0].name}: {rate:,.0f}/s (target >= {target:,}): "
              f"{'ok' if rate >= target else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
