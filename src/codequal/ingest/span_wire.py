"""OTLP spans read straight from an ExportTraceServiceRequest's wire bytes: trace ingest's hot
path, for OTLP/HTTP protobuf and OTLP/gRPC alike (OTLP/JSON is parsed into the message class and
serialised back to these bytes).

Reading a span through the protobuf classes makes a Python object for every message and
repeated field it touches, even an empty one: an SDK's span with two attributes cost about
twice as much to read as to store. Here a span is a walk over its bytes: ids and names are
slices, times one ``struct`` read, and attribute values become the JSON-safe values the store
keeps (:func:`codequal.ingest.json_safe`) in the same pass.

Messages and fields (opentelemetry/proto): ExportTraceServiceRequest { repeated ResourceSpans
resource_spans = 1 }; ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2 };
Resource { repeated KeyValue attributes = 1 }; ScopeSpans { InstrumentationScope scope = 1;
repeated Span spans = 2 }; InstrumentationScope { string name = 1 }; Span { bytes trace_id = 1;
bytes span_id = 2; bytes parent_span_id = 4; string name = 5; SpanKind kind = 6; fixed64
start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
repeated Event events = 11; Status status = 15 }; Event { fixed64 time_unix_nano = 1; string
name = 2; repeated KeyValue attributes = 3 }; Status { string message = 2; StatusCode code = 3 };
KeyValue { string key = 1; AnyValue value = 2 }; AnyValue { oneof: string 1, bool 2, int64 3,
double 4, ArrayValue 5, KeyValueList 6, bytes 7 }; ArrayValue and KeyValueList { repeated values
= 1 }. Other fields are skipped. As protobuf does, a repeated singular field keeps its last value
and the occurrences of a singular message merge; a oneof keeps the member set last.

A malformed message raises ``ValueError`` (``UnicodeDecodeError`` for a string that is not
UTF-8, as protobuf refuses it too) or ``IndexError``; the caller answers 400.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

from codequal.ingest import MAX_DEPTH, SERVICE_WIDTH, TRUNCATED, clean
from codequal.ingest.wire import length, skip, varint
from codequal.telemetry.stores.spans import SpanRecord

KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}  # SpanKind
STATUSES = {0: "UNSET", 1: "OK", 2: "ERROR"}
# An attribute value nested deeper is refused, as protobuf refuses a message nested past 100
# (an AnyValue level is two messages); what is stored is cut at MAX_DEPTH anyway.
MAX_NESTING = 50
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
_SIGN, _INT64, _MASK = 1 << 63, 1 << 64, (1 << 64) - 1
_ENUM = (1 << 32) - 1  # an enum is an int32: protobuf keeps a varint's low 32 bits
# Tags, field << 3 | wire type (2: length-delimited, 0: varint, 1: fixed64)
_FIRST = 0x0A  # field 1, length-delimited: resource_spans, resource, scope, Resource.attributes
_SECOND = 0x12  # field 2, length-delimited: scope_spans, spans, KeyValue.value, Event.name
_TRACE_ID, _SPAN_ID, _PARENT_ID, _NAME = 0x0A, 0x12, 0x22, 0x2A
_KIND, _START, _END, _ATTRIBUTE, _EVENT, _STATUS = 0x30, 0x39, 0x41, 0x4A, 0x5A, 0x7A
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTE = 0x09, 0x12, 0x1A
_STATUS_MESSAGE, _STATUS_CODE = 0x12, 0x18
_STRING, _BOOL, _INT, _DOUBLE, _ARRAY, _KVLIST, _BYTES = 0x0A, 0x10, 0x18, 0x21, 0x2A, 0x32, 0x3A

Span = SpanRecord | str  # a record, or why the span is refused


def traces(raw: bytes) -> tuple[list[SpanRecord], int, str]:
    """The spans of an ExportTraceServiceRequest: the records, how many spans were refused (ids
    of the wrong size, or all zero), and the first refusal's reason."""
    records: list[SpanRecord] = []
    rejected, reason = 0, ""
    for start, stop in _fields(raw, 0, len(raw), _FIRST):
        for span in _resource_spans(raw, start, stop):
            if isinstance(span, str):
                rejected += 1
                reason = reason or span
            else:
                records.append(span)
    return records, rejected, reason


def bad_id(value: bytes, size: int, name: str, optional: bool = False) -> str | None:
    """Why ``value`` is not a valid id of ``size`` bytes, or None when it is."""
    if optional and not value:
        return None
    if len(value) != size or not any(value):
        return f"{name} must be {size} bytes and not all zero, got {len(value)} bytes"
    return None


def service_name(attributes: dict[str, Any]) -> str:
    """The ``service.name`` resource attribute as a service column value."""
    name = attributes.get("service.name")
    return clean(str(name) if name else "unknown")[:SERVICE_WIDTH]


def _resource_spans(raw: bytes, pos: int, end: int) -> list[Span]:
    # The resource may follow its spans: both are found first, then the spans are read.
    resources, scopes = _first_and_second(raw, pos, end)
    resource: dict[str, Any] = {}
    for start, stop in resources:  # occurrences merge
        resource.update(_raw_attributes(raw, _fields(raw, start, stop, _FIRST), 0))
    service = service_name(resource)
    out: list[Span] = []
    for start, stop in scopes:
        _scope_spans(raw, start, stop, service, out)
    return out


def _scope_spans(raw: bytes, pos: int, end: int, service: str, out: list[Span]) -> None:
    found, spans = _first_and_second(raw, pos, end)
    scope = ""
    for start, stop in found:  # InstrumentationScope: its name (field 1), the last one given
        for a, b in _fields(raw, start, stop, _FIRST):
            scope = raw[a:b].decode()
    for start, stop in spans:
        out.append(_span(raw, start, stop, service, scope))


def _span(raw: bytes, pos: int, end: int, service: str, scope: str) -> Span:  # noqa: PLR0912, PLR0915 - a branch per field, written out: the hot path
    trace_id = span_id = parent_id = b""
    name, message = "", ""
    kind = code = start_ns = end_ns = 0
    attrs: dict[str, Any] = {}
    events: list[tuple[int, int]] = []
    known = _ATTRIBUTES
    while pos < end:
        tag = raw[pos]
        if tag in _DELIMITED:
            size = raw[pos + 1]
            if size < 0x80:
                start, stop = pos + 2, pos + 2 + size
                if stop > end:
                    raise ValueError("a field runs past the end of its message")
            else:
                stop, start = length(raw, pos + 1, end)
            pos = stop
            if tag == _ATTRIBUTE:
                field = raw[start:stop]
                found = known.get(field)
                if found is None:
                    found = _attribute(raw, start, stop, field)
                attrs[found[0]] = found[1]
            elif tag == _TRACE_ID:
                trace_id = raw[start:stop]
            elif tag == _SPAN_ID:
                span_id = raw[start:stop]
            elif tag == _NAME:
                name = raw[start:stop].decode()
            elif tag == _PARENT_ID:
                parent_id = raw[start:stop]
            elif tag == _EVENT:
                events.append((start, stop))
            else:  # status: occurrences merge, each sets what it holds
                message, code = _status(raw, start, stop, message, code)
        elif tag in (_START, _END):
            if pos + 9 > end:
                raise ValueError("a span's time runs past its end")
            if tag == _START:
                start_ns = _U64.unpack_from(raw, pos + 1)[0]
            else:
                end_ns = _U64.unpack_from(raw, pos + 1)[0]
            pos += 9
        elif tag == _KIND:
            kind, pos = varint(raw, pos + 1)
        else:
            pos = skip(raw, pos, end)
    problem = (
        bad_id(trace_id, 16, "trace_id")
        or bad_id(span_id, 8, "span_id")
        or bad_id(parent_id, 8, "parent_span_id", optional=True)
    )
    if problem is not None:
        return f"span {name[:100]!r}: {problem}"
    begin = start_ns / 1e9
    finish = max(begin, end_ns / 1e9)
    if any("\x00" in key for key in attrs):
        attrs = _clean_keys(attrs)
    if scope:
        attrs.setdefault("otel.scope.name", clean(scope))
    return SpanRecord(
        trace_id.hex(),
        span_id.hex(),
        parent_id.hex() or None,
        clean(name[:500]),
        KINDS.get(kind & _ENUM, "INTERNAL"),
        service,
        begin,
        finish,
        finish - begin,
        STATUSES.get(code & _ENUM, "UNSET"),
        clean(message) or None,
        attrs,
        [_event(raw, start, stop) for start, stop in events],
    )


# A span's attribute fields as sent, read: an SDK sends the same few (a route, a status code, a
# method) span after span. Scalar values only (lists and dicts are mutable), short fields only,
# and at most MAX_KNOWN_ATTRIBUTES of them (then it starts again, as remote write's does).
_ATTRIBUTES: dict[bytes, tuple[str, Any]] = {}
MAX_KNOWN_ATTRIBUTES = 16_384
_KNOWN_SIZE = 200
_DELIMITED = frozenset({_ATTRIBUTE, _TRACE_ID, _SPAN_ID, _NAME, _PARENT_ID, _EVENT, _STATUS})


def _attribute(raw: bytes, start: int, stop: int, field: bytes) -> tuple[str, Any]:
    """One KeyValue of a span, its key as sent and its value JSON-safe; remembered by its bytes
    when its value is a scalar."""
    found = _key_value(raw, start, stop, safe=True, depth=1)
    if len(field) <= _KNOWN_SIZE and not isinstance(found[1], list | dict):
        if len(_ATTRIBUTES) >= MAX_KNOWN_ATTRIBUTES:
            _ATTRIBUTES.clear()
        _ATTRIBUTES[field] = found
    return found


def _clean_keys(attributes: dict[str, Any]) -> dict[str, Any]:
    """Keys without NUL, after the last value of a repeated key won (as json_safe does)."""
    cleaned: dict[str, Any] = {}
    for key, value in attributes.items():
        cleaned[clean(key)] = value
    return cleaned


def _status(raw: bytes, pos: int, end: int, message: str, code: int) -> tuple[str, int]:
    while pos < end:
        tag = raw[pos]
        if tag == _STATUS_MESSAGE:
            stop, start = length(raw, pos + 1, end)
            message = raw[start:stop].decode()
            pos = stop
        elif tag == _STATUS_CODE:
            code, pos = varint(raw, pos + 1)
        else:
            pos = skip(raw, pos, end)
    return message, code


def _event(raw: bytes, pos: int, end: int) -> dict[str, Any]:
    name, nanos = "", 0
    attributes: list[tuple[int, int]] = []
    while pos < end:
        tag = raw[pos]
        if tag == _EVENT_ATTRIBUTE:
            stop, start = length(raw, pos + 1, end)
            attributes.append((start, stop))
            pos = stop
        elif tag == _EVENT_NAME:
            stop, start = length(raw, pos + 1, end)
            name = raw[start:stop].decode()
            pos = stop
        elif tag == _EVENT_TIME:
            if pos + 9 > end:
                raise ValueError("an event's time runs past its end")
            nanos = _U64.unpack_from(raw, pos + 1)[0]
            pos += 9
        else:
            pos = skip(raw, pos, end)
    return {
        "name": clean(name),
        "timestamp": nanos / 1e9,
        "attributes": _attributes(raw, attributes, 0),
    }


def _attributes(raw: bytes, fields: list[tuple[int, int]], depth: int) -> dict[str, Any]:
    """KeyValue fields as stored: a repeated key keeps its last value, and keys and values are
    JSON-safe; ``depth`` is the dict's own, its values are one deeper."""
    out: dict[str, Any] = {}
    for start, stop in fields:
        key, value = _key_value(raw, start, stop, safe=True, depth=depth + 1)
        out[key] = value
    return _clean_keys(out) if any("\x00" in key for key in out) else out


def _key_value(raw: bytes, pos: int, end: int, *, safe: bool, depth: int = 0) -> tuple[str, Any]:
    keys, value = _first_and_second(raw, pos, end)  # the value's occurrences merge
    key = ""
    for start, stop in keys:
        key = raw[start:stop].decode()
    return key, _any_value(raw, value, safe, depth)


def _raw_attributes(raw: bytes, fields: list[tuple[int, int]], depth: int) -> dict[str, Any]:
    """KeyValue fields as ``otlp.attributes`` gives them (not made JSON-safe)."""
    values: dict[str, Any] = {}
    for start, stop in fields:
        key, value = _key_value(raw, start, stop, safe=False, depth=depth + 1)
        values[key] = value
    return values


def _any_value(raw: bytes, parts: list[tuple[int, int]], safe: bool, depth: int) -> Any:
    """An AnyValue (its occurrences' bytes, merged) as a Python value, bytes as base64 text as
    ``otlp.any_value`` gives them; made JSON-safe at ``depth`` when ``safe``, as
    ``json_safe(value, depth)`` would."""
    if depth > MAX_NESTING:
        raise ValueError(f"an attribute value is nested more than {MAX_NESTING} deep")
    member, number, spans = _member(raw, parts)
    if member in _SCALARS:
        return _scalar(raw, member, number, spans, safe)
    if member == 0:
        return None
    if safe and depth >= MAX_DEPTH:
        _any_value(raw, parts, False, depth)  # read anyway: nesting past MAX_NESTING is refused
        return TRUNCATED
    fields = [field for start, stop in spans for field in _fields(raw, start, stop, _FIRST)]
    if member == _ARRAY:
        return [_any_value(raw, [field], safe, depth + 1) for field in fields]
    return (_attributes if safe else _raw_attributes)(raw, fields, depth)


_SCALARS = frozenset({_STRING, _BOOL, _INT, _DOUBLE, _BYTES})


def _member(raw: bytes, parts: list[tuple[int, int]]) -> tuple[int, int, list[tuple[int, int]]]:
    """The oneof member set last (its tag, 0 if none), its number (a varint, or where a double
    starts) and its bytes (a message member's from every occurrence since it was set)."""
    member, number = 0, 0
    spans: list[tuple[int, int]] = []
    for first, end in parts:
        pos = first
        while pos < end:
            tag = raw[pos]
            if tag in {_STRING, _ARRAY, _KVLIST, _BYTES}:
                stop, start = length(raw, pos + 1, end)
                if tag != member or tag in {_STRING, _BYTES}:
                    spans = []
                spans.append((start, stop))
                member, pos = tag, stop
            elif tag in {_BOOL, _INT}:
                number, pos = varint(raw, pos + 1)
                member = tag
            elif tag == _DOUBLE:
                if pos + 9 > end:
                    raise ValueError("a double runs past the end of its value")
                number, member = pos + 1, tag
                pos += 9
            else:  # not a member of the oneof (or not with its wire type): skipped
                pos = skip(raw, pos, end)
    return member, number, spans


def _scalar(raw: bytes, member: int, number: int, spans: list[tuple[int, int]], safe: bool) -> Any:
    if member == _INT:
        number &= _MASK
        return number - _INT64 if number >= _SIGN else number
    if member == _BOOL:
        return number != 0
    if member == _DOUBLE:
        double = _F64.unpack_from(raw, number)[0]
        return str(double) if safe and not math.isfinite(double) else double
    (start, stop) = spans[0]
    if member == _BYTES:
        return base64.b64encode(raw[start:stop]).decode()
    text = raw[start:stop].decode()
    return clean(text) if safe else text


def _first_and_second(
    raw: bytes, pos: int, end: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The (start, stop) of each length-delimited field 1 and field 2 in ``raw[pos:end]``."""
    first: list[tuple[int, int]] = []
    second: list[tuple[int, int]] = []
    while pos < end:
        tag = raw[pos]
        if tag in (_FIRST, _SECOND):
            stop, start = length(raw, pos + 1, end)
            (first if tag == _FIRST else second).append((start, stop))
            pos = stop
        else:
            pos = skip(raw, pos, end)
    return first, second


def _fields(raw: bytes, pos: int, end: int, tag: int) -> list[tuple[int, int]]:
    """The (start, stop) of each length-delimited field ``tag`` in ``raw[pos:end]``."""
    found = []
    while pos < end:
        if raw[pos] == tag:
            stop, start = length(raw, pos + 1, end)
            found.append((start, stop))
            pos = stop
        else:
            pos = skip(raw, pos, end)
    return found
