"""The hand-written WriteRequest reader agrees with the protobuf library on every request, and
refuses every truncated one with ValueError / IndexError (a 400), never anything else."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest

from codequal.ingest import prom_wire
from codequal.tsdb.prompb import WriteRequest


def random_request(rng: random.Random) -> WriteRequest:
    request = WriteRequest()
    for s in range(rng.randrange(1, 6)):
        series = request.timeseries.add()
        for i in range(rng.randrange(1, 5)):
            # Values of 0 (no value field), 1-127 and 128+ bytes, ASCII or not.
            value = rng.choice(["v", "é", "日"]) * rng.randrange(0, 150)
            series.labels.add(name=f"l{i}" if i else "__name__", value=value)
        for _ in range(rng.randrange(0, 4)):
            t = rng.choice([0, 1, 1_700_000_000_123, -5_000, 2**62])
            value = rng.choice([0.0, -1.5, math.inf, float(s), 1e300])
            series.samples.add(timestamp=t, value=value)
        if rng.random() < 0.3:
            series.exemplars.add(value=1.0, timestamp=5)
        if rng.random() < 0.2:
            series.histograms.add(timestamp=9)
    return request


Labelled = tuple[tuple[str, str], ...]


def expected(request: WriteRequest) -> tuple[list[tuple[Labelled, int, float]], int]:
    """What the protobuf library reads: every sample with its series' labels, skipped items."""
    out = [
        (
            tuple((label.name, label.value) for label in series.labels),
            sample.timestamp,
            sample.value,
        )
        for series in request.timeseries
        for sample in series.samples
    ]
    return out, sum(len(s.exemplars) + len(s.histograms) for s in request.timeseries)


def read(raw: bytes, known: dict[bytes, Labelled] | None = None, limit: int = 10**6) -> Any:
    cache = {} if known is None else known

    def resolve(index: int, fields: bytes) -> Labelled:
        cache[fields] = tuple(prom_wire.label_pairs(fields))
        return cache[fields]

    return prom_wire.samples(raw, cache, resolve, limit)


@pytest.mark.parametrize("seed", range(40))
def test_the_reader_agrees_with_protobuf(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data
    request = random_request(rng)
    raw = request.SerializeToString()
    known: dict[bytes, Labelled] = {}
    assert read(raw, known) == expected(request)
    # The fast path for label fields seen before reads the same samples.
    assert read(raw, known) == expected(request)


def test_a_request_of_one_sample_series_is_read_by_the_fast_path_alike() -> None:
    """Prometheus's shape: many series, one sample each, a millisecond timestamp of now."""
    request = WriteRequest()
    for i in range(50):
        series = request.timeseries.add()
        series.labels.add(name="__name__", value="node_cpu_seconds_total")
        series.labels.add(name="cpu", value=str(i))
        series.samples.add(timestamp=1_796_000_000_000 + i % 3, value=i / 7)
    raw = request.SerializeToString()
    known: dict[bytes, Labelled] = {}
    first = read(raw, known)
    assert first == expected(request)
    assert read(raw, known) == first


def test_more_samples_than_the_limit_is_refused() -> None:
    request = WriteRequest()
    for i in range(5):
        series = request.timeseries.add()
        series.labels.add(name="__name__", value=f"m{i}")
        series.samples.add(timestamp=1_796_000_000_000, value=1.0)
    raw = request.SerializeToString()
    known: dict[bytes, Labelled] = {}
    assert len(read(raw, known, limit=5)[0]) == 5
    for cache in (known, None):  # read by the fast path and by the general one
        with pytest.raises(prom_wire.TooMany):
            read(raw, cache, limit=4)


def test_a_nan_keeps_its_bits() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    request = WriteRequest()
    series = request.timeseries.add()
    series.labels.add(name="__name__", value="up")
    series.samples.add(timestamp=1_796_000_000_000, value=stale)
    raw = request.SerializeToString()
    known: dict[bytes, Labelled] = {}
    for _ in range(2):  # the general path, then the fast one
        ((_, _, value),), _ = read(raw, known)
        assert struct.pack("<d", value) == struct.pack("<d", stale)


@pytest.mark.parametrize("seed", range(10))
def test_every_truncation_is_refused_cleanly(seed: int) -> None:
    raw = random_request(random.Random(seed)).SerializeToString()  # noqa: S311
    known: dict[bytes, Labelled] = {}
    read(raw, known)
    for cut in range(1, len(raw)):
        for cache in (known, None):
            try:
                read(raw[:cut], None if cache is None else dict(cache))
            except (ValueError, IndexError, UnicodeDecodeError):
                continue
