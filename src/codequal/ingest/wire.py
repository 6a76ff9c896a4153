"""Protocol buffers' wire format, read by hand where the protobuf classes cost too much per item
(remote write's series, OTLP metrics' number points, OTLP spans). Every length is bounds-checked: a
truncated or malformed message raises ``ValueError`` or ``IndexError``.
"""

from __future__ import annotations


def varint(raw: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
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


def length(raw: bytes, pos: int, end: int) -> tuple[int, int]:
    """The end of a length-delimited value whose length starts at ``pos``, and its start."""
    byte = raw[pos]
    if byte < 0x80:
        start, size = pos + 1, byte
    else:
        size, start = varint(raw, pos)
    if start + size > end:
        raise ValueError("a field runs past the end of its message")
    return start + size, start


def skip(raw: bytes, pos: int, end: int) -> int:
    """Past one field of any wire type (a field this reader does not use)."""
    tag, pos = varint(raw, pos)
    kind = tag & 7
    if kind == 0:
        return varint(raw, pos)[1]
    if kind == 2:
        return length(raw, pos, end)[0]
    if kind in (1, 5):
        pos += 8 if kind == 1 else 4
        if pos > end:
            raise ValueError("a fixed-size field runs past the end of its message")
        return pos
    raise ValueError(f"wire type {kind} is not valid here")
