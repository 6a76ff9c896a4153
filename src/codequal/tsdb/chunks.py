"""The on-disk chunk format: a run of one series' samples, compressed into one BLOB.

Pure functions, no I/O. Everything per sample runs in C: extended-slice byte shuffles,
``array`` conversions and zlib to encode, numpy prefix sums and XORs to decode.

* Timestamps: the first one, then the first delta; when the rest are equally spaced (the
  scraper stamps the scheduled tick) nothing more. Otherwise the delta-of-deltas.
* Values: when every value is an integer below 2**53 (counters, histogram buckets, byte
  gauges), the integer deltas; otherwise each value's IEEE bits XOR the previous one's, as in
  Gorilla, with identical bit patterns kept (staleness markers are a NaN payload).
* Both arrays are byte-shuffled (all first bytes, then all second bytes, ...) before raw
  deflate: the high bytes of small deltas and of XORs of similar floats are zero, and long
  runs of zeros are what deflate compresses best.

Layout: ``<B version><B flags><H count><q t0><q first delta>`` then deflate(body).
"""

from __future__ import annotations

import math
import operator
import struct
import zlib
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from codequal.exceptions import CodeQualError

VERSION = 1
_HEADER = struct.Struct("<BBHqq")
_REGULAR = 0x01  # timestamps equally spaced: no timestamp body
_INTEGER = 0x02  # values are integer deltas (else XOR of IEEE bits)
_EXACT_INT = float(2**53)  # every integer below it is exact in float64
MAX_SAMPLES = 0xFFFF
NUMPY_FROM = 64  # samples: where numpy's encoding overtakes Python's on this machine


class ChunkError(CodeQualError, ValueError):
    """A BLOB that is not a chunk this version can read."""


def encode(timestamps: Sequence[int], values: Sequence[float]) -> bytes:
    """One chunk from sorted timestamps (ms) and their values (1..65535 samples)."""
    n = len(timestamps)
    if n == 0 or n != len(values) or n > MAX_SAMPLES:
        raise ValueError(f"a chunk holds 1..{MAX_SAMPLES} samples with one value each, got {n}")
    first_delta = timestamps[1] - timestamps[0] if n > 1 else 0
    # The same bytes either way: numpy's few calls cost ~30 us whatever the length, Python's
    # loops ~0.4 us a sample (the server re-encodes every open chunk at each flush).
    body = _body_numpy if n >= NUMPY_FROM else _body_python
    flags, raw = body(timestamps, values, first_delta)
    header = _HEADER.pack(VERSION, flags, n, timestamps[0], first_delta)
    return header + _deflate(raw)


def _body_python(
    timestamps: Sequence[int], values: Sequence[float], first_delta: int
) -> tuple[int, bytes]:
    deltas = _differences(timestamps)
    flags = 0
    body = bytearray()
    if deltas.count(first_delta) == len(deltas):
        flags |= _REGULAR
    else:
        body += _shuffle(array("q", _differences(deltas)).tobytes(), 8)
    if _all_integers(values):
        flags |= _INTEGER
        ints = list(map(int, values))
        body += _shuffle(array("q", [ints[0], *_differences(ints)]).tobytes(), 8)
    else:
        bits = array("q", array("d", values).tobytes())
        body += _shuffle(array("q", [bits[0], *map(operator.xor, bits[1:], bits)]).tobytes(), 8)
    return flags, bytes(body)


def _body_numpy(
    timestamps: Sequence[int], values: Sequence[float], first_delta: int
) -> tuple[int, bytes]:
    ts = _as_numpy(timestamps, np.int64)
    deltas = np.diff(ts)
    flags = 0
    body = []
    if (deltas == first_delta).all():
        flags |= _REGULAR
    else:
        body.append(_shuffled(np.diff(deltas)))
    vs = _as_numpy(values, np.float64)
    if _all_integers(values):
        flags |= _INTEGER
        ints = vs.astype(np.int64)
        body.append(_shuffled(np.concatenate((ints[:1], np.diff(ints)))))
    else:
        bits = vs.view(np.int64)
        body.append(_shuffled(bits ^ np.concatenate(([0], bits[:-1]))))
    return flags, b"".join(body)


def decode(blob: bytes) -> tuple[array[int], array[float]]:
    """The timestamps (``array('q')``) and values (``array('d')``) of a chunk."""
    try:
        version, flags, n, t0, first_delta = _HEADER.unpack_from(blob)
        body = zlib.decompress(blob[_HEADER.size :], -15)
    except (struct.error, zlib.error) as exc:
        raise ChunkError(f"corrupt chunk: {exc}") from exc
    if version != VERSION:
        raise ChunkError(f"chunk format version {version}; this CodeQual reads {VERSION}")
    offset = 0
    if flags & _REGULAR:
        timestamps = t0 + np.arange(n, dtype=np.int64) * first_delta
    else:
        offset = (n - 2) * 8
        dods = _unshuffle_ints(body[:offset])
        deltas = np.cumsum(np.concatenate(([first_delta], dods)))
        timestamps = np.cumsum(np.concatenate(([t0], deltas)))
    raw = body[offset:]
    if len(raw) != n * 8 or timestamps.size != n:
        raise ChunkError(f"corrupt chunk: {len(raw) // 8} values for {n} samples")
    ints = _unshuffle_ints(raw)
    if flags & _INTEGER:
        values = np.cumsum(ints).astype(np.float64)
    else:
        values = np.bitwise_xor.accumulate(ints).view(np.float64)
    return array("q", timestamps.astype(np.int64).tobytes()), array("d", values.tobytes())


def _unshuffle_ints(raw: bytes) -> npt.NDArray[np.int64]:
    """Undo :func:`_shuffle` (width 8): the little-endian int64s, in order."""
    grid = np.frombuffer(raw, dtype=np.uint8).reshape(8, -1)
    return np.ascontiguousarray(grid.T).view("<i8").reshape(-1)


def _differences(xs: Sequence[int]) -> list[int]:
    # map() over operator functions keeps the per-sample loop in C.
    return list(map(operator.sub, xs[1:], xs))


def _all_integers(values: Sequence[float]) -> bool:
    if not all(map(float.is_integer, values)) or max(map(abs, values)) >= _EXACT_INT:
        return False
    # -0.0 is an integer to is_integer() but int() would lose its sign.
    return 0.0 not in values or all(math.copysign(1.0, v) > 0 for v in values if v == 0)


def _shuffle(raw: bytes, width: int) -> bytes:
    return b"".join(raw[i::width] for i in range(width))


def _as_numpy(items: Sequence[Any], dtype: type[np.generic]) -> npt.NDArray[Any]:
    # The heads hold array('q') / array('d'): viewed in place, not copied item by item.
    if isinstance(items, array):
        return np.frombuffer(items, dtype=dtype)
    return np.asarray(items, dtype=dtype)


def _shuffled(ints: npt.NDArray[np.int64]) -> bytes:
    """:func:`_shuffle` (width 8) of little-endian int64s, in numpy."""
    return np.ascontiguousarray(ints, dtype="<i8").view(np.uint8).reshape(-1, 8).T.tobytes()


def _deflate(data: bytes) -> bytes:
    # Raw deflate (no zlib header or checksum): 6 bytes per chunk matter at ~1 byte/sample.
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()
