"""OTLP metrics as Prometheus samples: the names, labels and series Prometheus's OTLP receiver
would write for the same request."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from codequal.ingest import IngestError, clean
from codequal.ingest.otlp import any_value
from codequal.ingest.otlp_metrics import (
    DELTA,
    MAX_SAMPLES,
    NO_RECORDED_VALUE,
    _text,
    format_bound,
    metrics_from,
)
from codequal.ingest.prom_names import label_name, metric_name
from codequal.tsdb.promql import STALE_NAN, Labels

CUMULATIVE = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
T_NS = 1_700_000_000_000_000_000
NOW = 1_700_000_100.0


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("http.server.duration", "ms", {}, "http_server_duration_milliseconds"),
        ("http.server.request.size", "By", {}, "http_server_request_size_bytes"),
        ("requests", "{request}", {"counter": True}, "requests_total"),
        ("requests.total", "1", {"counter": True}, "requests_total"),
        ("network.io", "By/s", {"counter": True}, "network_io_bytes_per_second_total"),
        ("cpu.utilization", "1", {"gauge": True}, "cpu_utilization_ratio"),
        ("queue.seconds", "s", {}, "queue_seconds"),
        ("2xx.responses", "", {}, "_2xx_responses"),
        ("disk.usage", "%", {"gauge": True}, "disk_usage_percent"),
    ],
)
def test_metric_names_follow_prometheus_otlp_translation(
    name: str, unit: str, kind: dict[str, bool], expected: str
) -> None:
    assert metric_name(name, unit, **kind) == expected


def test_attribute_keys_become_valid_label_names() -> None:
    assert label_name("http.route") == "http_route"
    assert label_name("2nd") == "key_2nd"
    assert label_name("_private") == "key_private"


def test_bounds_are_formatted_as_prometheus_formats_them() -> None:
    assert [format_bound(b) for b in (1.0, 0.005, 1e-05, 250.0, math.inf)] == [
        "1",
        "0.005",
        "0.00001",
        "250",
        "+Inf",
    ]


def _kv(key: str, value: str | int) -> common_pb2.KeyValue:
    any_value = (
        common_pb2.AnyValue(string_value=value)
        if isinstance(value, str)
        else common_pb2.AnyValue(int_value=value)
    )
    return common_pb2.KeyValue(key=key, value=any_value)


def request_with(*metrics: metrics_pb2.Metric, resource: dict[str, str] | None = None) -> object:
    attrs = resource if resource is not None else {"service.name": "shop", "host.name": "h1"}
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource={"attributes": [_kv(k, v) for k, v in attrs.items()]},
                scope_metrics=[metrics_pb2.ScopeMetrics(metrics=list(metrics))],
            )
        ]
    )


def as_dict(result: object) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(labels)): value for labels, _, value in result.records}  # type: ignore[attr-defined]


def counter(name: str, value: int, temporality: int = CUMULATIVE) -> metrics_pb2.Metric:
    point = metrics_pb2.NumberDataPoint(
        as_int=value, time_unix_nano=T_NS, attributes=[_kv("http.route", "/cart")]
    )
    return metrics_pb2.Metric(
        name=name,
        unit="{request}",
        sum=metrics_pb2.Sum(
            data_points=[point], is_monotonic=True, aggregation_temporality=temporality
        ),
    )


def test_a_counter_gets_total_and_the_resource_gives_job_instance_and_target_info() -> None:
    resource = {
        "service.name": "shop",
        "service.namespace": "prod",
        "service.instance.id": "pod-1",
        "host.name": "h1",
    }
    result = metrics_from(request_with(counter("http.requests", 7), resource=resource), NOW)
    series = as_dict(result)
    target = {"job": "prod/shop", "instance": "pod-1", "service_name": "shop"}
    key = tuple(
        sorted({"__name__": "http_requests_total", "http_route": "/cart", **target}.items())
    )
    assert series[key] == 7.0
    info = tuple(sorted({"__name__": "target_info", "host_name": "h1", **target}.items()))
    assert series[info] == 1.0
    assert all(t == T_NS // 1_000_000 for _, t, _ in result.records)
    assert result.rejected == 0


def test_delta_points_are_refused_with_a_message_naming_the_fix() -> None:
    result = metrics_from(request_with(counter("ok", 1), counter("deltas", 3, DELTA)), NOW)
    assert result.rejected == 1
    assert "cumulative" in result.message and "'deltas'" in result.message
    assert {dict(labels)["__name__"] for labels, _, _ in result.records} == {
        "ok_total",
        "target_info",
    }


def test_explicit_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    point = metrics_pb2.HistogramDataPoint(
        time_unix_nano=T_NS,
        count=10,
        sum=4.5,
        explicit_bounds=[0.1, 1.0],
        bucket_counts=[3, 5, 2],
    )
    metric = metrics_pb2.Metric(
        name="rpc.duration",
        unit="s",
        histogram=metrics_pb2.Histogram(data_points=[point], aggregation_temporality=CUMULATIVE),
    )
    got = {
        (labels.name, labels.to_dict().get("le")): value
        for labels, _, value in metrics_from(request_with(metric), NOW).records
        if labels.name != "target_info"
    }
    assert got == {
        ("rpc_duration_seconds_bucket", "0.1"): 3.0,
        ("rpc_duration_seconds_bucket", "1"): 8.0,
        ("rpc_duration_seconds_bucket", "+Inf"): 10.0,
        ("rpc_duration_seconds_sum", None): 4.5,
        ("rpc_duration_seconds_count", None): 10.0,
    }


def test_exponential_histograms_become_classic_buckets_at_their_boundaries() -> None:
    # scale 0: base 2; offset 1 -> buckets (2, 4] and (4, 8]; 1 zero, 1 negative value.
    point = metrics_pb2.ExponentialHistogramDataPoint(
        time_unix_nano=T_NS,
        count=7,
        sum=20.0,
        scale=0,
        zero_count=1,
        positive={"offset": 1, "bucket_counts": [2, 3]},
        negative={"offset": 0, "bucket_counts": [1]},
    )
    metric = metrics_pb2.Metric(
        name="size",
        unit="By",
        exponential_histogram=metrics_pb2.ExponentialHistogram(
            data_points=[point], aggregation_temporality=CUMULATIVE
        ),
    )
    buckets = {
        labels.get("le"): value
        for labels, _, value in metrics_from(request_with(metric), NOW).records
        if labels.name == "size_bytes_bucket"
    }
    assert buckets == {"4": 4.0, "8": 7.0, "+Inf": 7.0}


def test_a_point_without_a_recorded_value_is_a_staleness_marker() -> None:
    point = metrics_pb2.NumberDataPoint(time_unix_nano=T_NS, flags=NO_RECORDED_VALUE)
    metric = metrics_pb2.Metric(name="temp", gauge=metrics_pb2.Gauge(data_points=[point]))
    (sample,) = [s for s in metrics_from(request_with(metric), NOW).records if "temp" in str(s)]
    assert math.isnan(sample[2])


def test_a_request_over_the_sample_limit_is_refused_whole() -> None:
    points = [
        metrics_pb2.NumberDataPoint(as_int=1, attributes=[_kv("i", i)])
        for i in range(MAX_SAMPLES + 1)
    ]
    metric = metrics_pb2.Metric(name="g", gauge=metrics_pb2.Gauge(data_points=points))
    with pytest.raises(IngestError) as caught:
        metrics_from(request_with(metric, resource={}), NOW)
    assert caught.value.status == 413


def _random_value(rng: random.Random) -> common_pb2.AnyValue:
    kind = rng.choice(["string", "int", "bool", "double", "array"])
    if kind == "string":
        return common_pb2.AnyValue(string_value=rng.choice(["", "/cart", "é ü", "x" * 300]))
    if kind == "int":
        return common_pb2.AnyValue(int_value=rng.choice([0, -3, 2**62]))
    if kind == "bool":
        return common_pb2.AnyValue(bool_value=rng.random() < 0.5)
    if kind == "double":
        return common_pb2.AnyValue(double_value=rng.choice([0.0, 1.5, -2e300]))
    values = [common_pb2.AnyValue(string_value="a"), common_pb2.AnyValue(int_value=1)]
    return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=values))


def _random_metric(rng: random.Random, index: int) -> metrics_pb2.Metric:
    points = []
    for _ in range(rng.randrange(0, 6)):
        point = metrics_pb2.NumberDataPoint(
            time_unix_nano=rng.choice([0, T_NS, T_NS + 1_234_567]),
            start_time_unix_nano=rng.choice([0, T_NS - 10**9]),
            flags=NO_RECORDED_VALUE if rng.random() < 0.1 else 0,
        )
        if rng.random() < 0.5:
            point.as_int = rng.choice([0, 7, -(2**63)])
        else:
            point.as_double = rng.choice([0.0, 0.25, -1e-300, math.inf])
        for a in range(rng.randrange(0, 4)):
            point.attributes.add(key=rng.choice(["http.route", "2nd", f"k{a}"])).value.CopyFrom(
                _random_value(rng)
            )
        if rng.random() < 0.2:
            point.exemplars.add(as_double=1.0, time_unix_nano=T_NS)
        points.append(point)
    metric = metrics_pb2.Metric(name=f"m{index}.size", unit=rng.choice(["", "By", "1"]))
    if rng.random() < 0.5:
        metric.gauge.data_points.extend(points)
    else:
        metric.sum.data_points.extend(points)
        metric.sum.is_monotonic = rng.random() < 0.5
        metric.sum.aggregation_temporality = CUMULATIVE
    return metric


def _reference(request: Any) -> list[tuple[dict[str, str], int, float]]:
    """The number points as read through the protobuf classes, translated by the same rules
    (the resource is only ``service.name=shop``)."""
    out = []
    for metric in request.resource_metrics[0].scope_metrics[0].metrics:
        gauge = metric.HasField("gauge")
        data = metric.gauge if gauge else metric.sum
        counter = not gauge and metric.sum.is_monotonic
        name = metric_name(metric.name, metric.unit, counter=counter, gauge=gauge)
        for point in data.data_points:
            labels = {"__name__": name}
            for kv in point.attributes:
                labels[label_name(kv.key)] = clean(_text(any_value(kv.value)))
            labels["job"] = labels["service_name"] = "shop"
            t = point.time_unix_nano // 1_000_000 or round(NOW * 1000)
            value = point.as_double or float(point.as_int)
            out.append((labels, t, STALE_NAN if point.flags & NO_RECORDED_VALUE else value))
    return out


@pytest.mark.parametrize("seed", range(30))
def test_number_points_read_from_the_wire_agree_with_the_protobuf_classes(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data
    metrics = [_random_metric(rng, i % 3) for i in range(rng.randrange(1, 5))]
    request = request_with(*metrics, resource={"service.name": "shop"})
    want = [(Labels.of(labels), t, v) for labels, t, v in _reference(request)]
    for _ in range(2):  # labels built, then found by their attribute bytes
        got = metrics_from(request, NOW).records
        assert [(labels, t) for labels, t, _ in got] == [(labels, t) for labels, t, _ in want]
        assert [struct.pack("<d", v) for _, _, v in got] == [
            struct.pack("<d", v) for _, _, v in want
        ]
