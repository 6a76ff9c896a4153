"""The chunk format: exact round trips (bit for bit) and the compression it exists for."""

from __future__ import annotations

import math
import random
import struct
from array import array

import pytest

from codequal.tsdb import chunks
from codequal.tsdb.promql import STALE_NAN

T0 = 1_700_000_000_000


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def roundtrip(ts: list[int], vs: list[float]) -> bytes:
    blob = chunks.encode(ts, vs)
    got_ts, got_vs = chunks.decode(blob)
    assert list(got_ts) == ts
    assert bits(list(got_vs)) == bits(vs)
    return blob


@pytest.mark.parametrize(
    "values",
    [
        [float(i * 3) for i in range(200)],  # integer counter: the delta path
        [0.1 * i for i in range(200)],  # floats: the XOR path
        [1.0, STALE_NAN, 2.0, math.nan, math.inf, -math.inf, -0.0, 0.0],
        [2.0**53, 2.0**53 + 2, -(2.0**60), 1e300, 5e-324],  # beyond exact integer deltas
        [-5.0, 3.0, -7.0, 11.0],  # integers going down: negative deltas
        [42.0],
    ],
    ids=["int-counter", "floats", "special", "huge", "negative-deltas", "single"],
)
def test_values_round_trip_bit_for_bit(values: list[float]) -> None:
    roundtrip([T0 + i * 15_000 for i in range(len(values))], values)


def test_staleness_marker_survives_the_integer_path_check() -> None:
    ts = [T0, T0 + 15_000, T0 + 30_000]
    _, vs = chunks.decode(chunks.encode(ts, [1.0, 2.0, STALE_NAN]))
    assert struct.pack("<d", vs[2]) == struct.pack("<d", STALE_NAN)


def test_irregular_timestamps_round_trip() -> None:
    rng = random.Random(3)  # noqa: S311 - test data
    ts = [T0]
    for _ in range(300):
        ts.append(ts[-1] + rng.choice([1, 14_990, 15_000, 15_013, 60_000, 3_600_000]))
    roundtrip(ts, [float(i) for i in range(len(ts))])
    roundtrip([T0, T0 + 5], [1.0, 2.0])
    roundtrip([-T0, -5, 0, 7], [1.0, 2.0, 3.0, 4.0])  # before 1970 too


def test_a_regular_counter_costs_under_half_a_byte_per_sample() -> None:
    rng = random.Random(1)  # noqa: S311 - test data
    total, values = 0, []
    for _ in range(480):
        total += rng.choice([0, 0, 0, 1, 2, 5])
        values.append(float(total))
    blob = roundtrip([T0 + i * 15_000 for i in range(480)], values)
    assert len(blob) / 480 < 0.5


def test_a_constant_series_costs_almost_nothing() -> None:
    blob = roundtrip([T0 + i * 15_000 for i in range(480)], [1.0] * 480)
    assert len(blob) < 50


def test_encode_refuses_what_a_chunk_cannot_hold() -> None:
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        chunks.encode([], [])
    with pytest.raises(ValueError, match="one value each"):
        chunks.encode([1, 2], [1.0])


def test_decode_names_a_corrupt_or_foreign_blob() -> None:
    blob = chunks.encode([T0, T0 + 1], [1.0, 2.0])
    with pytest.raises(chunks.ChunkError, match="corrupt"):
        chunks.decode(blob[:10])
    with pytest.raises(chunks.ChunkError, match="corrupt"):
        chunks.decode(blob[:-3])
    with pytest.raises(chunks.ChunkError, match="version 9"):
        chunks.decode(bytes([9]) + blob[1:])


@pytest.mark.parametrize("seed", range(30))
def test_short_and_long_chunk_encodings_write_the_same_bytes(seed: int) -> None:
    """Chunks under NUMPY_FROM samples are encoded in Python, longer ones with numpy: both
    write the very same body for the same samples, from lists or from the heads' arrays."""
    rng = random.Random(seed)  # noqa: S311 - test data
    n = rng.choice([1, 2, 3, 17, 64, 240, 960])
    ts = [T0]
    for _ in range(n - 1):
        regular = rng.random() < 0.8
        ts.append(ts[-1] + (15_000 if regular else rng.choice([1, 14_990, 15_013, 3_600_000])))
    pool = {
        "ints": [float(rng.randrange(-(10**6), 10**6)) for _ in range(8)],
        "floats": [rng.random() * 100, 0.1, 1e-300, 5e-324],
        "special": [STALE_NAN, math.nan, math.inf, -math.inf, -0.0, 0.0, 2.0**53, 2.0**53 - 1],
    }[rng.choice(["ints", "floats", "special"])]
    vs = [rng.choice(pool) for _ in range(n)]
    first = ts[1] - ts[0] if n > 1 else 0
    expected = chunks._body_python(ts, vs, first)
    assert chunks._body_numpy(ts, vs, first) == expected
    assert chunks._body_numpy(array("q", ts), array("d", vs), first) == expected
    roundtrip(ts, vs)
