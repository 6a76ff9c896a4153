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
from collections.abc import Container

_DOUBLE = struct.Struct("<d")
_SIGN, _INT64 = 1 << 63, 1 << 64
_LABEL, _SAMPLE, _EXEMPLAR, _HISTOGRAM = 0x0A, 0x12, 0x1A, 0x22  # field << 3 | 2
_VALUE, _TIMESTAMP = 0x09, 0x10  # Sample.value (fixed64), Sample.timestamp (varint)
_NAME, _TEXT = 0x0A, 0x12  # Label.name, Label.value
# A millisecond timestamp of this century is a six-byte varint: a sample field of 16 bytes.
_SAMPLE_SIZES = (16, *range(11, 16), *range(17, 21))

# (the series' label fields as sent: the cache key; [(timestamp ms, value)]; skipped items)
Series = tuple[bytes, list[tuple[int, float]], int]


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = raw[pos]  # IndexError past the end: the caller reports a malformed body
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("a varint is longer than ten bytes")


def _length(raw: bytes, pos: int, end: int) -> tuple[int, int]:
    """The end of a length-delimited value whose length starts at ``pos``, and its start."""
    byte = raw[pos]
    if byte < 0x80:
        start, size = pos + 1, byte
    else:
        size, start = _varint(raw, pos)
    if start + size > end:
        raise ValueError("a field runs past the end of its message")
    return start + size, start


def _skip(raw: bytes, pos: int, end: int) -> int:
    """Past one field of any wire type (a field this reader does not use)."""
    tag, pos = _varint(raw, pos)
    kind = tag & 7
    if kind == 0:
        return _varint(raw, pos)[1]
    if kind == 2:
        return _length(raw, pos, end)[0]
    if kind in (1, 5):
        pos += 8 if kind == 1 else 4
        if pos > end:
            raise ValueError("a fixed-size field runs past the end of its message")
        return pos
    raise ValueError(f"wire type {kind} is not valid here")


def series(raw: bytes, known: Container[bytes] = frozenset()) -> list[Series]:
    """Each TimeSeries of a WriteRequest: its label fields, samples and skipped items.

    ``known`` holds label fields seen before: a series that is such labels followed by one
    sample is read from its end, without walking its labels (see :func:`_known_series`).
    """
    out = []
    times: dict[bytes, int] = {}  # a request's samples mostly share a few timestamps
    pos, end = 0, len(raw)
    while pos < end:
        if raw[pos] == _LABEL:  # WriteRequest.timeseries has the same tag as Label fields
            stop, start = _length(raw, pos + 1, end)
            found = _known_series(raw, start, stop, known, times)
            out.append(found or _series(raw, start, stop, times))
            pos = stop
        else:
            pos = _skip(raw, pos, end)
    return out


def _known_series(
    raw: bytes, start: int, end: int, known: Container[bytes], times: dict[bytes, int]
) -> Series | None:
    """A known series with one sample, read from the end: the sample field is the last
    ``2 + size`` bytes for a size of 11 to 20 (value, then a timestamp varint). The split is
    right whenever the bytes before it are label fields seen before: those are complete
    fields, so the sample field starts on a field boundary."""
    for size in _SAMPLE_SIZES:
        at = end - size - 2
        if (
            at > start
            and raw[at] == _SAMPLE
            and raw[at + 1] == size
            and raw[at + 2] == _VALUE
            and raw[at + 11] == _TIMESTAMP
        ):
            key = raw[start:at]
            if key in known:
                return key, [_sample(raw, at + 2, end, times)], 0
    return None


def _series(raw: bytes, pos: int, end: int, times: dict[bytes, int]) -> Series:
    parts: list[bytes] = []  # label fields (tag and length included), as runs of the body
    run = pos
    samples: list[tuple[int, float]] = []
    skipped = 0
    while pos < end:
        tag = raw[pos]
        if tag not in (_LABEL, _SAMPLE, _EXEMPLAR, _HISTOGRAM):
            if run < pos:
                parts.append(raw[run:pos])
            pos = _skip(raw, pos, end)
            run = pos
            continue
        stop, start = _length(raw, pos + 1, end)
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
            timestamp, stop = _varint(raw, pos + 10)
            if stop != end:
                raise ValueError("a sample runs past the end of its series")
            timestamp = times[key] = timestamp - _INT64 if timestamp >= _SIGN else timestamp
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
            timestamp, pos = _varint(raw, pos + 1)
        else:
            pos = _skip(raw, pos, end)
    if pos != end:
        raise ValueError("a sample runs past the end of its series")
    return (timestamp - _INT64 if timestamp >= _SIGN else timestamp), value


def label_pairs(fields: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a series' label fields; ValueError if not UTF-8 or malformed."""
    pairs = []
    pos, end = 0, len(fields)
    while pos < end:
        if fields[pos] != _LABEL:
            pos = _skip(fields, pos, end)
            continue
        stop, start = _length(fields, pos + 1, end)
        pairs.append(_label(fields[start:stop]))
        pos = stop
    return pairs


def _label(label: bytes) -> tuple[str, str]:
    name = value = ""
    pos, end = 0, len(label)
    while pos < end:
        tag = label[pos]
        if tag in (_NAME, _TEXT):
            stop, start = _length(label, pos + 1, end)
            text = label[start:stop].decode()
            name, value = (text, value) if tag == _NAME else (name, text)
            pos = stop
        else:
            pos = _skip(label, pos, end)
    return name, value
