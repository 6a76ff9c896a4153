"""Spans read from their wire bytes (codequal.ingest.span_wire) are the spans the protobuf
classes read: the same records for random requests, refusals for malformed ones, and nesting
bounded before it costs anything."""

from __future__ import annotations

import math
import struct
from random import Random
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from codequal.ingest import TRUNCATED, IngestError, clean, json_safe, span_wire
from codequal.ingest.otlp import attributes, traces_from_bytes
from codequal.ingest.span_wire import KINDS, MAX_NESTING, STATUSES, bad_id, service_name
from codequal.telemetry.stores.spans import SpanRecord

TEXT = ["", "a", "GET /items/{id}", "é", "\x00", "a\x00b", "\ufffd", "😀", "service.name",
        "otel.scope.name"]  # fmt: skip


def oracle(raw: bytes) -> tuple[list[SpanRecord], int, str]:
    """What the protobuf classes read from ``raw``: how spans were read before span_wire."""
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
    records: list[SpanRecord] = []
    rejected, reason = 0, ""
    for resource_spans in request.resource_spans:
        service = service_name(attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                problem = (
                    bad_id(span.trace_id, 16, "trace_id")
                    or bad_id(span.span_id, 8, "span_id")
                    or bad_id(span.parent_span_id, 8, "parent_span_id", optional=True)
                )
                if problem is not None:
                    rejected += 1
                    reason = reason or f"span {span.name[:100]!r}: {problem}"
                    continue
                start = span.start_time_unix_nano / 1e9
                end = max(start, span.end_time_unix_nano / 1e9)
                attrs = attributes(span.attributes)
                if scope:
                    attrs.setdefault("otel.scope.name", scope)
                events = [
                    {
                        "name": clean(e.name),
                        "timestamp": e.time_unix_nano / 1e9,
                        "attributes": json_safe(attributes(e.attributes)),
                    }
                    for e in span.events
                ]
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=clean(span.name[:500]),
                        kind=KINDS.get(span.kind, "INTERNAL"),
                        service=service,
                        start_ts=start,
                        end_ts=end,
                        duration=end - start,
                        status=STATUSES.get(span.status.code, "UNSET"),
                        status_message=clean(span.status.message) or None,
                        attributes=json_safe(attrs),
                        events=events,
                    )
                )
    return records, rejected, reason


def fill_value(rng: Random, value: common_pb2.AnyValue, depth: int) -> None:
    kind = rng.choice(["s", "b", "i", "d", "a", "k", "y", "none"] if depth < 20 else ["s", "i"])
    if kind == "s":
        value.string_value = rng.choice(TEXT)
    elif kind == "b":
        value.bool_value = rng.random() < 0.5
    elif kind == "i":
        value.int_value = rng.choice([0, 1, -1, 2**63 - 1, -(2**63), rng.getrandbits(40)])
    elif kind == "d":
        value.double_value = rng.choice([0.0, -0.0, 1.5, math.inf, -math.inf, math.nan, 1e300])
    elif kind == "y":
        value.bytes_value = rng.randbytes(rng.randrange(0, 5))
    elif kind == "a":
        array = value.array_value
        array.SetInParent()  # an empty array is a value too
        for _ in range(rng.randrange(0, 3)):
            fill_value(rng, array.values.add(), depth + 1)
    elif kind == "k":
        kvlist = value.kvlist_value
        kvlist.SetInParent()
        fill_attributes(rng, kvlist.values, depth + 1)


def fill_attributes(rng: Random, pairs: Any, depth: int = 0) -> None:
    for _ in range(rng.randrange(0, 4)):
        kv = pairs.add(key=rng.choice(TEXT))  # repeated keys too: the last wins
        if rng.random() < 0.9:
            fill_value(rng, kv.value, depth)


def an_id(rng: Random, size: int) -> bytes:
    return rng.choice([rng.randbytes(size)] * 6 + [b"", bytes(size), rng.randbytes(size + 1)])


def random_request(rng: Random) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    for _ in range(rng.randrange(1, 3)):
        resource = request.resource_spans.add(schema_url=rng.choice(TEXT))
        fill_attributes(rng, resource.resource.attributes)
        if rng.random() < 0.7:
            kv = resource.resource.attributes.add(key="service.name")
            fill_value(rng, kv.value, 18)
        for _ in range(rng.randrange(1, 3)):
            scope = resource.scope_spans.add()
            if rng.random() < 0.7:
                scope.scope.name = rng.choice(TEXT)
                scope.scope.version = "1.0"
            for _ in range(rng.randrange(0, 5)):
                span = scope.spans.add(
                    trace_id=an_id(rng, 16), span_id=an_id(rng, 8),
                    parent_span_id=rng.choice([b"", an_id(rng, 8)]),
                    name=rng.choice(TEXT) * rng.choice([1, 1, 200]),
                    kind=rng.randrange(-1, 8), trace_state=rng.choice(TEXT),
                    start_time_unix_nano=rng.getrandbits(64),
                    end_time_unix_nano=rng.getrandbits(64), flags=rng.getrandbits(32),
                    dropped_attributes_count=rng.randrange(3),
                )  # fmt: skip
                fill_attributes(rng, span.attributes)
                for _ in range(rng.randrange(0, 3)):
                    event = span.events.add(
                        name=rng.choice(TEXT), time_unix_nano=rng.getrandbits(64)
                    )
                    fill_attributes(rng, event.attributes)
                if rng.random() < 0.3:  # skipped, nested fields and all
                    link = span.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
                    fill_attributes(rng, link.attributes)
                if rng.random() < 0.6:
                    span.status.code = trace_pb2.Status.StatusCode.ValueType(rng.randrange(0, 4))
                    span.status.message = rng.choice(TEXT)
    return request


@pytest.mark.parametrize("seed", range(300))
def test_random_requests_read_as_the_protobuf_classes_read_them(seed: int) -> None:
    raw = random_request(Random(seed)).SerializeToString()  # noqa: S311 - test data
    decoded = traces_from_bytes(raw)
    records, rejected, reason = oracle(raw)
    assert decoded.records == records
    assert decoded.rejected == rejected
    assert (reason in decoded.message) if rejected else decoded.message == ""


def test_fields_given_twice_merge_as_protobuf_merges_them() -> None:
    # A span sent as two serialised halves back to back is one span: a status given twice keeps
    # the second's code and the first's message (the second has none), and an attribute value
    # given twice keeps the member set last (string, then int), or merges two of the same
    # message member (two arrays are one).
    first = trace_pb2.Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="a")
    first.status.message, first.status.code = "first", trace_pb2.Status.STATUS_CODE_OK
    second = trace_pb2.Span(name="b")
    second.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    text = common_pb2.AnyValue(string_value="text").SerializeToString()
    number = common_pb2.AnyValue(int_value=7).SerializeToString()
    pair = b"\x0a\x01k" + _field(0x12, text) + _field(0x12, number)
    one, two = (
        common_pb2.AnyValue(
            array_value=common_pb2.ArrayValue(values=[common_pb2.AnyValue(int_value=n)])
        )
        for n in (1, 2)
    )
    arrays = (
        b"\x0a\x01a" + _field(0x12, one.SerializeToString()) + _field(0x12, two.SerializeToString())
    )
    span = first.SerializeToString() + second.SerializeToString()
    # an array, a string, an array: the string cleared the first array, the second stands alone
    cleared = b"\x0a\x01b" + _field(0x12, one.SerializeToString()) + _field(0x12, text)
    cleared += _field(0x12, two.SerializeToString())
    span += _field(0x4A, pair) + _field(0x4A, arrays) + _field(0x4A, cleared)
    raw = _field(0x0A, _field(0x12, _field(0x12, span)))
    assert traces_from_bytes(raw).records == oracle(raw)[0]
    (record,) = traces_from_bytes(raw).records
    assert (record.name, record.status, record.status_message) == ("b", "ERROR", "first")
    assert record.attributes == {"k": 7, "a": [1, 2], "b": [2]}


def _field(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@pytest.mark.parametrize("seed", range(20))
def test_a_cut_or_corrupted_request_is_refused_or_read_never_crashes(seed: int) -> None:
    rng = Random(seed)  # noqa: S311 - test data
    raw = random_request(rng).SerializeToString()
    candidates = [raw[:cut] for cut in range(len(raw))]
    for _ in range(200):
        flipped = bytearray(raw)
        flipped[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        candidates.append(bytes(flipped))
    for body in candidates:
        try:
            traces_from_bytes(body)
        except IngestError as exc:
            assert exc.status == 400
            assert "ExportTraceServiceRequest" in exc.message


def nested(levels: int) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = (
        request.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="deep")
    )
    value = span.attributes.add(key="deep").value
    for _ in range(levels):
        value = value.array_value.values.add()
    value.string_value = "bottom"
    return request


def test_values_nested_past_the_stored_depth_are_stored_truncated() -> None:
    (record,) = traces_from_bytes(nested(30).SerializeToString()).records
    value = record.attributes["deep"]
    for _ in range(15):
        (value,) = value
    assert value == TRUNCATED


def test_values_nested_past_protobufs_own_limit_are_refused() -> None:
    # protobuf's parser refuses this too (it nests 2 messages per level); nothing is built
    raw = nested(MAX_NESTING + 1).SerializeToString()
    with pytest.raises(IngestError, match="nested more than"):
        traces_from_bytes(raw)
    with pytest.raises(Exception, match=r"(?i)error parsing|recursion|depth"):
        trace_service_pb2.ExportTraceServiceRequest.FromString(raw)


def test_a_string_that_is_not_utf8_is_refused_as_protobuf_refuses_it() -> None:
    request = nested(0)
    raw = request.SerializeToString().replace(b"deep", b"de\xffp")
    with pytest.raises(IngestError, match="ExportTraceServiceRequest"):
        traces_from_bytes(raw)


def test_fixed_width_fields_cut_short_are_refused() -> None:
    span = trace_pb2.Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    body = span.SerializeToString() + b"\x39" + struct.pack("<I", 7)  # start time: 4 of 8 bytes
    raw = _field(0x0A, _field(0x12, _field(0x12, body)))
    with pytest.raises(IngestError):
        traces_from_bytes(raw)


def test_remembered_attributes_give_each_span_its_own_values() -> None:
    # Attribute fields seen before are not read again, but a list or a dict is never shared:
    # a span's record must not change when another span's is changed.
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n in (1, 2):
        span = spans.add(trace_id=bytes([n]) * 16, span_id=bytes([n]) * 8, name="s")
        span.attributes.add(key="route").value.string_value = "/items/{id}"
        span.attributes.add(key="tags").value.array_value.values.add().string_value = "a"
    first, second = traces_from_bytes(request.SerializeToString()).records
    first.attributes["tags"].append("changed")
    assert second.attributes == {"route": "/items/{id}", "tags": ["a"]}


def test_the_remembered_attributes_are_bounded() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = (
        request.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, name="many")
    )
    for n in range(span_wire.MAX_KNOWN_ATTRIBUTES + 10):
        span.attributes.add(key=f"user.{n}").value.int_value = n
    (record,) = traces_from_bytes(request.SerializeToString()).records
    assert len(record.attributes) == span_wire.MAX_KNOWN_ATTRIBUTES + 10
    assert len(span_wire._ATTRIBUTES) <= span_wire.MAX_KNOWN_ATTRIBUTES
