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

import struct
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
from codequal.ingest.wire import length, skip, varint
from codequal.tsdb.promql import STALE_NAN, Labels

FORMAT = "otlp"
Sample = tuple[Labels, int, float]
# A request may carry at most this many samples (a histogram point is one per bucket plus two).
MAX_SAMPLES = 500_000
MAX_LABELS = 64  # per series, resource labels included; a point over it is refused alone
DELTA = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
NO_RECORDED_VALUE = metrics_pb2.DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
# The labels of number points by metric name and target labels, then attribute fields as sent.
_Tail = tuple[Labels, bool]  # a number point's labels, and whether it is a staleness marker
_SERIES: dict[tuple[str, tuple[tuple[str, str], ...]], dict[bytes, _Tail]] = {}
MAX_METRICS, MAX_KNOWN = 10_000, 100_000  # (metric, target) pairs; series of each
# Wire tags (field << 3 | wire type) of Gauge/Sum.data_points and NumberDataPoint's fields.
_DATA_POINT = 0x0A
_START_TIME, _TIME, _AS_DOUBLE, _AS_INT, _ATTRIBUTE, _FLAGS = 0x11, 0x19, 0x21, 0x31, 0x3A, 0x40
_U64, _I64, _F64 = struct.Struct("<Q"), struct.Struct("<q"), struct.Struct("<d")
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


class _Translation:
    """Collects the samples of one request, counting refused points with the first reason."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.samples: list[Sample] = []
        self.rejected = 0
        self.reason = ""
        self._target: dict[str, str] = {}
        self._target_key: tuple[tuple[str, str], ...] = ()

    def refuse(self, n: int, reason: str) -> None:
        self.rejected += n
        self.reason = self.reason or reason

    def resource(self, resource_metrics: metrics_pb2.ResourceMetrics) -> None:
        resource = attributes(resource_metrics.resource.attributes)
        self._target = _target_labels(resource)
        self._target_key = tuple(self._target.items())
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
            return self.numbers(name, metric.gauge)
        if kind == "sum":
            data = metric.sum
            if data.aggregation_temporality == DELTA:
                self.refuse(len(data.data_points), f"{metric.name[:100]!r}: {_DELTA_REASON}")
                return 0
            name = metric_name(metric.name, metric.unit, counter=data.is_monotonic)
            return self.numbers(name, data)
        if kind in ("histogram", "exponential_histogram", "summary"):
            histogram = getattr(metric, kind)
            if kind != "summary" and histogram.aggregation_temporality == DELTA:
                self.refuse(len(histogram.data_points), f"{metric.name[:100]!r}: {_DELTA_REASON}")
                return 0
            name = metric_name(metric.name, metric.unit)
            return self.distributions(name, kind, histogram.data_points)
        self.refuse(1, f"metric {metric.name[:100]!r} has no data of a known type")
        return 0

    def numbers(self, name: str, data: metrics_pb2.Gauge | metrics_pb2.Sum) -> int:
        """Add a gauge's or a sum's points; returns the newest timestamp (ms).

        The points are read from the data's wire bytes (:mod:`.wire`), not through the
        protobuf classes: an exporter sends the same series export after export, and a
        series' labels are found by its attribute fields as bytes, so a known series costs
        a dictionary lookup instead of building and sorting its labels again. The bytes are
        the protobuf library's own serialisation of a message it parsed, so fields come in
        field order: a point's attributes (field 7) are one run.
        """
        raw = data.SerializeToString()
        cache = _series_of(name, self._target_key)
        samples = self.samples
        now_ms = self.now_ms
        latest = 0
        pos, end = 0, len(raw)
        while pos < end:
            if raw[pos] != _DATA_POINT:
                pos = skip(raw, pos, end)
                continue
            stop, p = length(raw, pos + 1, end)
            pos = stop
            # The lead fields in their order (start time, time, value), then the tail: the
            # attributes and flags, the same bytes export after export for a series.
            nanos, value = 0, 0.0
            if p < stop and raw[p] == _START_TIME:
                p += 9
            if p < stop and raw[p] == _TIME:
                nanos = _U64.unpack_from(raw, p + 1)[0]
                p += 9
            if p < stop and raw[p] == _AS_DOUBLE:
                value = _F64.unpack_from(raw, p + 1)[0]
                p += 9
            elif p < stop and raw[p] == _AS_INT:
                value = float(_I64.unpack_from(raw, p + 1)[0])
                p += 9
            if p > stop:
                raise ValueError("a data point runs past its end")
            found = cache.get(raw[p:stop])
            if found is None:
                tail = self._tail(name, raw, p, stop, cache)
                if tail is None:
                    continue
                found, later = tail
                if later is not None:  # exemplars came first: the value is in the tail
                    value = later
            labels, stale = found
            t = nanos // 1_000_000 if nanos else now_ms
            latest = max(latest, t)
            if len(samples) >= MAX_SAMPLES:
                raise too_many_samples()
            samples.append((labels, t, STALE_NAN if stale else value))
        return latest

    def _tail(
        self, name: str, raw: bytes, pos: int, stop: int, cache: dict[bytes, _Tail]
    ) -> tuple[_Tail, float | None] | None:
        """A point's labels and staleness from the fields after its value, remembered by those
        bytes when they are only attributes and flags; and a value found among them (after
        exemplars). None when the point is refused."""
        start, first, last = pos, -1, -1
        flags, value, plain = 0, None, True
        while pos < stop:
            tag = raw[pos]
            if tag == _ATTRIBUTE:
                if first < 0:
                    first = pos
                pos = last = length(raw, pos + 1, stop)[0]
                continue
            if tag == _FLAGS:
                flags, pos = varint(raw, pos + 1)
                continue
            plain = False
            if tag in (_AS_DOUBLE, _AS_INT):
                (value,) = (_F64 if tag == _AS_DOUBLE else _I64).unpack_from(raw, pos + 1)
                value = float(value)
                pos += 9
            else:
                pos = skip(raw, pos, stop)
        if pos != stop:
            raise ValueError("a data point runs past its end")
        fields = raw[first:last] if first >= 0 else b""
        found = cache.get(fields)
        labels = found[0] if found is not None else self._number_labels(name, fields)
        if labels is None:
            return None
        if len(cache) >= MAX_KNOWN:
            cache.clear()
        cache.setdefault(fields, (labels, False))
        tail = (labels, bool(flags & NO_RECORDED_VALUE))
        if plain:
            cache[raw[start:stop]] = tail
        return tail, value

    def _number_labels(self, name: str, fields: bytes) -> Labels | None:
        """The labels of a point with these attribute fields; None if refused."""
        pairs = []
        pos, end = 0, len(fields)
        while pos < end:
            if fields[pos] == _ATTRIBUTE:
                stop, start = length(fields, pos + 1, end)
                kv = common_pb2.KeyValue.FromString(fields[start:stop])
                pairs.append((kv.key, any_value(kv.value)))
                pos = stop
            else:
                pos = skip(fields, pos, end)
        found = self.point_labels(name, pairs)
        return None if found is None else Labels.of(found)

    def distributions(self, name: str, kind: str, points: Iterable[Any]) -> int:
        latest = 0
        for point in points:
            base = self.point_labels(
                name, ((kv.key, any_value(kv.value)) for kv in point.attributes)
            )
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

    def point_labels(self, name: str, pairs: Iterable[tuple[str, Any]]) -> dict[str, str] | None:
        labels = {"__name__": name, **_labels_of(pairs)}
        labels.update(self._target)
        if len(labels) > MAX_LABELS:
            self.refuse(1, f"{name}: {len(labels)} labels; the limit is {MAX_LABELS} per series")
            return None
        return labels

    def time(self, nanos: int) -> int:
        return nanos // 1_000_000 if nanos else self.now_ms

    def add(self, labels: Labels | dict[str, str], t: int, value: float) -> None:
        if len(self.samples) >= MAX_SAMPLES:
            raise too_many_samples()
        self.samples.append((labels if isinstance(labels, Labels) else Labels.of(labels), t, value))


def too_many_samples() -> IngestError:
    return IngestError(
        413, f"the request holds more than {MAX_SAMPLES} samples; send smaller batches"
    )


def _series_of(name: str, target: tuple[tuple[str, str], ...]) -> dict[bytes, _Tail]:
    """What is known of one metric's number points from one target, by their tail bytes."""
    found = _SERIES.get((name, target))
    if found is None:
        if len(_SERIES) >= MAX_METRICS:
            _SERIES.clear()
        found = _SERIES[name, target] = {}
    return found


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
