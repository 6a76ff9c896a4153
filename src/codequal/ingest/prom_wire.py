"""A WriteRequest read straight from its protobuf wire bytes, for remote write's hot path.

Prometheus sends one sample per series per request, so the cost of a request is its series:
through the protobuf classes, reading a series' labels (a message object and two strings per
label) cost several times storing its sample. Here a series' label fields stay byte strings,
the key of a cache of checked :class:`Labels`; a known series costs a few slices and one
``struct`` read. Unknown series are parsed label by label (:func:`label_pairs`) and checked by
the caller. Every length is bounds-checked: a truncated or malformed body raises ``ValueError``.

Wire format (prometheus/prompb): WriteRequest { repeated TimeSeries timeseries = 1; ... };
TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; repeated Exemplar
exemplars = 3; repeated Histogram histograms = 4; }; Label { string name = 1; string value = 2; }
Sample { double value = 1; int64 timestamp = 2; }. The tags of those fields are one byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import TypeVar

from codequal.ingest.wire import length, skip, varint

_DOUBLE = struct.Struct("<d")
_SIGN, _INT64 = 1 << 63, 1 << 64
_LABEL, _SAMPLE, _EXEMPLAR, _HISTOGRAM = 0x0A, 0x12, 0x1A, 0x22  # field << 3 | 2
_VALUE, _TIMESTAMP = 0x09, 0x10  # Sample.value (fixed64), Sample.timestamp (varint)
# A series' one sample: the field of 16 bytes, the value first (as every sender writes it).
_ONE_SAMPLE = bytes((_SAMPLE, 16, _VALUE))
_NAME, _TEXT = 0x0A, 0x12  # Label.name, Label.value
T = TypeVar("T")


class TooMany(ValueError):
    """The request holds more samples than the caller's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request holds more than {limit} samples")


# (a series' label fields as sent; [(timestamp ms, value)]; skipped items)
_Series = tuple[bytes, list[tuple[int, float]], int]


def samples(
    raw: bytes, known: Mapping[bytes, T], resolve: Callable[[int, bytes], T], limit: int
) -> tuple[list[tuple[T, int, float]], int]:
    """Every float sample of a WriteRequest as ``(labels, timestamp ms, value)``, and the count
    of skipped items (exemplars, native histograms).

    A series' labels are ``known[fields]`` for its label fields as sent, else
    ``resolve(index, fields)`` (which checks them, and may raise; the caller remembers them
    in ``known``). ``ValueError`` for a malformed request, :class:`TooMany` for one of more
    than ``limit`` samples.

    The loop is the hot path of remote write, written out: a series of known labels followed by
    one sample is read from its end without walking its labels. The sample field is then the
    last 18 bytes (value, then a six-byte timestamp varint, as a millisecond timestamp of this
    century is), and the split is right whenever the bytes before it are label fields seen
    before: those are complete fields, so the sample field starts on a field boundary.
    """
    out: list[tuple[T, int, float]] = []
    add = out.append
    lookup = known.get
    unpack = _DOUBLE.unpack_from
    times: dict[bytes, int] = {}  # a request's samples mostly share a few timestamps
    skipped = index = 0
    pos, end = 0, len(raw)
    # A series read by the fast path is at least 21 bytes and one sample: a body shorter than
    # that many times the limit cannot hold too many of them (the general path always counts).
    guard = end >= 21 * limit
    while pos < end:
        if raw[pos] != _LABEL:  # WriteRequest.timeseries has the same tag as Label fields
            pos = skip(raw, pos, end)
            continue
        size = raw[pos + 1]
        if size < 0x80:
            start = pos + 2
        else:
            size, start = varint(raw, pos + 1)
        pos = start + size
        if pos > end:
            raise ValueError("a field runs past the end of its message")
        at = pos - 18
        if at > start and raw[at : at + 3] == _ONE_SAMPLE and raw[at + 11] == _TIMESTAMP:
            labels = lookup(raw[start:at])
            if labels is not None:
                stamp = raw[at + 12 : pos]
                t = times.get(stamp)
                if t is None:
                    t = times[stamp] = _timestamp(raw, at + 12, pos)
                add((labels, t, unpack(raw, at + 3)[0]))
                index += 1
                if guard and len(out) > limit:
                    raise TooMany(limit)
                continue
        fields, points, others = _series(raw, start, pos, times)
        labels = lookup(fields)
        if labels is None:
            labels = resolve(index, fields)
        out.extend([(labels, t, v) for t, v in points])
        skipped += others
        index += 1
        if len(out) > limit:
            raise TooMany(limit)
    return out, skipped


def _series(raw: bytes, pos: int, end: int, times: dict[bytes, int]) -> _Series:
    parts: list[bytes] = []  # label fields (tag and length included), as runs of the body
    run = pos
    samples: list[tuple[int, float]] = []
    skipped = 0
    while pos < end:
        tag = raw[pos]
        if tag not in (_LABEL, _SAMPLE, _EXEMPLAR, _HISTOGRAM):
            if run < pos:
                parts.append(raw[run:pos])
            pos = skip(raw, pos, end)
            run = pos
            continue
        stop, start = length(raw, pos + 1, end)
        if tag != _LABEL:
            if run < pos:
                parts.append(raw[run:pos])
            if tag == _SAMPLE:
                samples.append(_sample(raw, start, stop, times))
            else:
                skipped += 1
            run = stop
        pos = stop
    if run < pos:
        parts.append(raw[run:pos])
    return (parts[0] if len(parts) == 1 else b"".join(parts)), samples, skipped


def _sample(raw: bytes, pos: int, end: int, times: dict[bytes, int]) -> tuple[int, float]:
    # The usual layout, value then timestamp: one struct read and a cached varint.
    if end - pos >= 11 and raw[pos] == _VALUE and raw[pos + 9] == _TIMESTAMP:
        key = raw[pos + 10 : end]
        timestamp = times.get(key)
        if timestamp is None:
            timestamp = times[key] = _timestamp(raw, pos + 10, end)
        return timestamp, _DOUBLE.unpack_from(raw, pos + 1)[0]
    value, timestamp = 0.0, 0
    while pos < end:
        tag = raw[pos]
        if tag == _VALUE:
            if pos + 9 > end:
                raise ValueError("a sample's value runs past the end of the sample")
            value = _DOUBLE.unpack_from(raw, pos + 1)[0]
            pos += 9
        elif tag == _TIMESTAMP:
            timestamp, pos = varint(raw, pos + 1)
        else:
            pos = skip(raw, pos, end)
    if pos != end:
        raise ValueError("a sample runs past the end of its series")
    return (timestamp - _INT64 if timestamp >= _SIGN else timestamp), value


def _timestamp(raw: bytes, pos: int, end: int) -> int:
    """The int64 varint that is the rest of a sample, from ``pos`` to ``end``."""
    value, stop = varint(raw, pos)
    if stop != end:
        raise ValueError("a sample runs past the end of its series")
    return value - _INT64 if value >= _SIGN else value


def label_pairs(fields: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a series' label fields; ValueError if not UTF-8 or malformed."""
    pairs = []
    pos, end = 0, len(fields)
    while pos < end:
        if fields[pos] != _LABEL:
            pos = skip(fields, pos, end)
            continue
        stop, start = length(fields, pos + 1, end)
        # The usual layout, a name then a value, each shorter than 128 bytes: read in place.
        mid = start + 2 + fields[start + 1] if stop - start >= 4 else stop
        if (
            mid + 2 <= stop
            and fields[start] == _NAME
            and fields[start + 1] < 0x80
            and fields[mid] == _TEXT
            and fields[mid + 1] == stop - mid - 2
        ):
            pairs.append((fields[start + 2 : mid].decode(), fields[mid + 2 : stop].decode()))
        else:
            pairs.append(_label(fields[start:stop]))
        pos = stop
    return pairs


def _label(label: bytes) -> tuple[str, str]:
    name = value = ""
    pos, end = 0, len(label)
    while pos < end:
        tag = label[pos]
        if tag in (_NAME, _TEXT):
            stop, start = length(label, pos + 1, end)
            text = label[start:stop].decode()
            name, value = (text, value) if tag == _NAME else (name, text)
            pos = stop
        else:
            pos = skip(label, pos, end)
    return name, value
