"""The hand-written WriteRequest reader agrees with the protobuf library on every request, and
refuses every truncated one with ValueError / IndexError (a 400), never anything else."""

from __future__ import annotations

import math
import random
import struct

import pytest

from codequal.ingest import prom_wire
from codequal.tsdb.prompb import WriteRequest


def random_request(rng: random.Random) -> WriteRequest:
    request = WriteRequest()
    for s in range(rng.randrange(1, 6)):
        series = request.timeseries.add()
        for i in range(rng.randrange(1, 5)):
            series.labels.add(name=f"l{i}" if i else "__name__", value="v" * rng.randrange(0, 300))
        for _ in range(rng.randrange(0, 4)):
            t = rng.choice([0, 1, 1_700_000_000_123, -5_000, 2**62])
            value = rng.choice([0.0, -1.5, math.inf, float(s), 1e300])
            series.samples.add(timestamp=t, value=value)
        if rng.random() < 0.3:
            series.exemplars.add(value=1.0, timestamp=5)
        if rng.random() < 0.2:
            series.histograms.add(timestamp=9)
    return request


def expected(
    request: WriteRequest,
) -> list[tuple[list[tuple[str, str]], list[tuple[int, float]], int]]:
    return [
        (
            [(label.name, label.value) for label in series.labels],
            [(sample.timestamp, sample.value) for sample in series.samples],
            len(series.exemplars) + len(series.histograms),
        )
        for series in request.timeseries
    ]


@pytest.mark.parametrize("seed", range(40))
def test_the_reader_agrees_with_protobuf(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data
    request = random_request(rng)
    raw = request.SerializeToString()
    got = [(prom_wire.label_pairs(k), s, n) for k, s, n in prom_wire.series(raw)]
    assert got == expected(request)
    # The fast path for label fields seen before reads the same series.
    known = {key for key, _, _ in prom_wire.series(raw)}
    again = [(prom_wire.label_pairs(k), s, n) for k, s, n in prom_wire.series(raw, known)]
    assert again == got


def test_a_nan_keeps_its_bits() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    request = WriteRequest()
    series = request.timeseries.add()
    series.labels.add(name="__name__", value="up")
    series.samples.add(timestamp=1, value=stale)
    ((_, [(_, value)], _),) = prom_wire.series(request.SerializeToString())
    assert struct.pack("<d", value) == struct.pack("<d", stale)


@pytest.mark.parametrize("seed", range(10))
def test_every_truncation_is_refused_cleanly(seed: int) -> None:
    raw = random_request(random.Random(seed)).SerializeToString()  # noqa: S311
    for cut in range(1, len(raw)):
        try:
            for key, _, _ in prom_wire.series(raw[:cut]):
                prom_wire.label_pairs(key)
        except (ValueError, IndexError, UnicodeDecodeError):
            continue
