"""OTLP metrics (``/v1/metrics`` and the gRPC MetricsService) as samples for the embedded TSDB.

Names and labels follow Prometheus's OTLP receiver (:mod:`.prom_names`). From the resource,
``service.namespace``/``service.name`` become ``job`` (``namespace/name``), ``service.instance.id``
becomes ``instance``, and ``service.name`` is also promoted to ``service_name``; any other
resource attributes go to one ``target_info`` series per resource, as Prometheus writes them.

- gauge -> ``name``; a monotonic sum -> ``name_total``; a non-monotonic sum -> ``name``;
- histogram -> ``name_bucket{le}`` (cumulative), ``name_sum``, ``name_count``; an exponential
  histogram is written as the same classic buckets, one ``le`` per populated bucket boundary;
- summary -> ``name{quantile}``, ``name_sum``, ``name_count``;
- a point flagged "no recorded value" -> a staleness marker, so queries stop seeing the series.

Only cumulative temporality is stored. A delta sum or histogram is refused, point by point, in
the response's ``partial_success`` (the rest of the request is stored): turning deltas into
running totals needs per-series state that several replicas would not share, so the exporter is
asked to send cumulative values (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative``,
the SDKs' default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from codequal.ingest import IngestError, clean
from codequal.ingest.otlp import Decoded, Encoding, any_value, attributes, parse, summary
from codequal.ingest.prom_names import label_name, metric_name
from codequal.tsdb.promql import STALE_NAN

FORMAT = "otlp"
Sample = tuple[dict[str, str], int, float]
# A request may carry at most this many samples (a histogram point is one per bucket plus two).
MAX_SAMPLES = 500_000
MAX_LABELS = 64  # per series, resource labels included; a point over it is refused alone
DELTA = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
NO_RECORDED_VALUE = metrics_pb2.DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_TARGET_KEYS = frozenset({"service.name", "service.namespace", "service.instance.id"})
_DELTA_REASON = (
    "delta temporality is not stored; configure the exporter for cumulative temporality "
    "(OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative)"
)


def decode_metrics(body: bytes, encoding: Encoding, now: float) -> Decoded:
    """An ExportMetricsServiceRequest body as samples (``records``) and refused points."""
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    parse(body, encoding, request, "ExportMetricsServiceRequest")
    return metrics_from(request, now)


def metrics_from(request: metrics_service_pb2.ExportMetricsServiceRequest, now: float) -> Decoded:
    """Samples ``(labels, ms, value)`` of a parsed request; IngestError (413) past MAX_SAMPLES."""
    out = _Translation(round(now * 1000))
    for resource_metrics in request.resource_metrics:
        out.resource(resource_metrics)
    return Decoded(out.samples, out.rejected, summary(out.rejected, "data point", out.reason))


@lru_cache(maxsize=4096)
def format_bound(value: float) -> str:
    """``le`` and ``quantile`` values as Prometheus writes them: ``1``, ``0.005``, ``+Inf``."""
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    if value != value:  # noqa: PLR0124 - NaN
        return "NaN"
    text = format(Decimal(repr(value)).normalize(), "f")
    return "0" if text == "-0" else text


def _value(point: metrics_pb2.NumberDataPoint) -> float:
    # A oneof: whichever of the two is set; both read 0 when the other one is.
    return point.as_double or float(point.as_int)


class _Translation:
    """Collects the samples of one request, counting refused points with the first reason."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.samples: list[Sample] = []
        self.rejected = 0
        self.reason = ""
        self._target: dict[str, str] = {}

    def refuse(self, n: int, reason: str) -> None:
        self.rejected += n
        self.reason = self.reason or reason

    def resource(self, resource_metrics: metrics_pb2.ResourceMetrics) -> None:
        resource = attributes(resource_metrics.resource.attributes)
        self._target = _target_labels(resource)
        start, latest = len(self.samples), 0
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                latest = max(latest, self.metric(metric))
        info = {k: v for k, v in resource.items() if k not in _TARGET_KEYS}
        if info and len(self.samples) > start:
            labels = {"__name__": "target_info", **_labels_of(info.items()), **self._target}
            self.add(labels, latest, 1.0)

    def metric(self, metric: metrics_pb2.Metric) -> int:
        """Add the samples of one metric; returns its newest timestamp (ms)."""
        kind = metric.WhichOneof("data")
        if kind == "gauge":
            name = metric_name(metric.name, metric.unit, gauge=True)
            return self.numbers(name, metric.gauge.data_points)
        if kind == "sum":
            data = metric.sum
            if data.aggregation_temporality == DELTA:
                self.refuse(len(data.data_points), f"{metric.name[:100]!r}: {_DELTA_REASON}")
                return 0
            name = metric_name(metric.name, metric.unit, counter=data.is_monotonic)
            return self.numbers(name, data.data_points)
        if kind in ("histogram", "exponential_histogram", "summary"):
            histogram = getattr(metric, kind)
            if kind != "summary" and histogram.aggregation_temporality == DELTA:
                self.refuse(len(histogram.data_points), f"{metric.name[:100]!r}: {_DELTA_REASON}")
                return 0
            name = metric_name(metric.name, metric.unit)
            return self.distributions(name, kind, histogram.data_points)
        self.refuse(1, f"metric {metric.name[:100]!r} has no data of a known type")
        return 0

    def numbers(self, name: str, points: Iterable[metrics_pb2.NumberDataPoint]) -> int:
        latest = 0
        for point in points:
            labels = self.point_labels(name, point.attributes)
            if labels is None:
                continue
            t = self.time(point.time_unix_nano)
            latest = max(latest, t)
            stale = point.flags & NO_RECORDED_VALUE
            self.add(labels, t, STALE_NAN if stale else _value(point))
        return latest

    def distributions(self, name: str, kind: str, points: Iterable[Any]) -> int:
        latest = 0
        for point in points:
            base = self.point_labels(name, point.attributes)
            if base is None:
                continue
            t = self.time(point.time_unix_nano)
            latest = max(latest, t)
            stale = bool(point.flags & NO_RECORDED_VALUE)
            parts = _summary_parts(point) if kind == "summary" else _bucket_parts(point, kind)
            for suffix, extra, value in parts:
                labels = {**base, "__name__": name + suffix, **extra}
                self.add(labels, t, STALE_NAN if stale else value)
        return latest

    def point_labels(
        self, name: str, pairs: Iterable[common_pb2.KeyValue]
    ) -> dict[str, str] | None:
        labels = {"__name__": name, **_labels_of((kv.key, any_value(kv.value)) for kv in pairs)}
        labels.update(self._target)
        if len(labels) > MAX_LABELS:
            self.refuse(1, f"{name}: {len(labels)} labels; the limit is {MAX_LABELS} per series")
            return None
        return labels

    def time(self, nanos: int) -> int:
        return nanos // 1_000_000 if nanos else self.now_ms

    def add(self, labels: dict[str, str], t: int, value: float) -> None:
        if len(self.samples) >= MAX_SAMPLES:
            raise IngestError(
                413,
                f"the request holds more than {MAX_SAMPLES} samples; send smaller batches",
            )
        self.samples.append((labels, t, value))


def _target_labels(resource: Mapping[str, Any]) -> dict[str, str]:
    name, namespace = resource.get("service.name"), resource.get("service.namespace")
    out: dict[str, str] = {}
    if name:
        out["job"] = clean(f"{namespace}/{name}" if namespace else str(name))
        out["service_name"] = clean(str(name))
    instance = resource.get("service.instance.id")
    if instance:
        out["instance"] = clean(str(instance))
    return out


def _labels_of(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    return {label_name(key): clean(_text(value)) for key, value in pairs}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


Part = tuple[str, dict[str, str], float]


def _summary_parts(point: metrics_pb2.SummaryDataPoint) -> list[Part]:
    parts: list[Part] = [
        ("", {"quantile": format_bound(q.quantile)}, q.value) for q in point.quantile_values
    ]
    return [*parts, ("_sum", {}, point.sum), ("_count", {}, float(point.count))]


def _bucket_parts(point: Any, kind: str) -> list[Part]:
    if kind == "histogram":
        bounds = list(point.explicit_bounds)
        counts = list(point.bucket_counts)
        below = 0
    else:
        bounds, counts, below = _exponential_buckets(point)
    parts: list[Part] = []
    running = below
    for bound, count in zip(bounds, counts, strict=False):
        running += count
        parts.append(("_bucket", {"le": format_bound(bound)}, float(running)))
    parts.append(("_bucket", {"le": "+Inf"}, float(point.count)))
    if point.HasField("sum"):
        parts.append(("_sum", {}, point.sum))
    parts.append(("_count", {}, float(point.count)))
    return parts


def _exponential_buckets(
    point: metrics_pb2.ExponentialHistogramDataPoint,
) -> tuple[list[float], list[int], int]:
    """Upper bounds and counts of the positive buckets, and the count at or below zero.

    Bucket ``i`` holds values in ``(base**i, base**(i+1)]`` with ``base = 2**(2**-scale)``;
    the zero bucket and the negative buckets lie below every positive bound.
    """
    base = 2.0 ** (2.0**-point.scale)
    offset = point.positive.offset
    counts = list(point.positive.bucket_counts)
    bounds = [base ** (offset + i + 1) for i in range(len(counts))]
    below = point.zero_count + sum(point.negative.bucket_counts)
    return bounds, counts, below
