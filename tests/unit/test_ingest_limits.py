"""Body limits, Content-Encoding decoding with bounded output, and the per-key token bucket."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import zlib
from collections.abc import AsyncIterator
from typing import Any

import brotli
import pytest

from codequal.ingest import IngestError
from codequal.ingest.limits import (
    BodyLimit,
    RateLimiter,
    check_content_length,
    decode_body,
    rate_limited,
    read_body,
)

LIMIT = BodyLimit(compressed=1024, decompressed=4096)
TEXT = b'{"hello": "world"}' * 10


def run_isolated(coro: Any) -> Any:
    """asyncio.run on its own thread: an earlier test (Playwright) may own this thread's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def refused(status: int, fn: object, *args: object) -> str:
    with pytest.raises(IngestError) as caught:
        fn(*args)  # type: ignore[operator]
    assert caught.value.status == status, caught.value.message
    return caught.value.message


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        ("br", brotli.compress),
        ("gzip, br", lambda b: brotli.compress(gzip.compress(b))),
    ],
)
def test_every_supported_encoding_round_trips(encoding: str | None, pack: object) -> None:
    assert decode_body(pack(TEXT), encoding, LIMIT) == TEXT  # type: ignore[operator]


def test_concatenated_gzip_members_are_one_body() -> None:
    assert decode_body(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", LIMIT) == b"abcd"


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress),
     (None, lambda b: b)],
)  # fmt: skip
def test_a_body_that_decompresses_past_the_limit_is_413_naming_it(
    encoding: str | None, pack: object
) -> None:
    bomb = pack(b"\x00" * (LIMIT.decompressed + 1))  # type: ignore[operator]
    message = refused(413, decode_body, bomb, encoding, LIMIT)
    assert "4 KiB" in message


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(TEXT)[:-8]),
        ("deflate", zlib.compress(TEXT)[:-6]),
        ("br", brotli.compress(TEXT * 50)[:-4]),
    ],
)
def test_a_truncated_stream_is_400_saying_so(encoding: str, body: bytes) -> None:
    assert "truncated" in refused(400, decode_body, body, encoding, LIMIT)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_a_body_that_is_not_what_its_encoding_says_is_400(encoding: str) -> None:
    assert "not valid" in refused(400, decode_body, b"plain text, not compressed", encoding, LIMIT)


def test_trailing_garbage_after_a_gzip_stream_is_400() -> None:
    refused(400, decode_body, gzip.compress(TEXT) + b"junk", "gzip", LIMIT)


def test_an_unknown_encoding_is_415_listing_the_supported_ones() -> None:
    message = refused(415, decode_body, TEXT, "zstd", LIMIT)
    assert "gzip, deflate, br" in message


def test_content_length_is_checked_before_reading() -> None:
    check_content_length(None, LIMIT)
    check_content_length("1024", LIMIT)
    assert "1 KiB" in refused(413, check_content_length, "1025", LIMIT)
    refused(400, check_content_length, "lots", LIMIT)


async def chunks(sizes: list[int]) -> AsyncIterator[bytes]:
    for size in sizes:
        yield b"x" * size


def test_a_streamed_body_is_counted_and_refused_once_past_the_limit() -> None:
    assert run_isolated(read_body(chunks([512, 512]), LIMIT)) == b"x" * 1024
    with pytest.raises(IngestError) as caught:
        run_isolated(read_body(chunks([512, 512, 1]), LIMIT))
    assert caught.value.status == 413


# -- rate limiting -----------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_burst_then_waits_for_tokens_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10.0, burst=3.0, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("k") == pytest.approx(0.1)
    clock.now += 0.1
    assert limiter.acquire("k") is None
    clock.now += 100  # a long pause refills only up to the burst
    assert [limiter.acquire("k") is None for _ in range(4)] == [True, True, True, False]


def test_keys_have_separate_buckets_and_the_oldest_is_forgotten_past_max_keys() -> None:
    limiter = RateLimiter(rate=1.0, burst=1.0, clock=Clock(), max_keys=2)
    assert limiter.acquire("a") is None and limiter.acquire("b") is None
    assert limiter.acquire("a") is not None
    assert limiter.acquire("c") is None  # "b" was least recently used: forgotten
    assert limiter.acquire("b") is None


def test_a_cost_above_the_burst_is_still_payable() -> None:
    limiter = RateLimiter(rate=1.0, burst=2.0, clock=Clock())
    assert limiter.acquire("k", cost=50) is None


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert rate_limited(0.01).headers == {"Retry-After": "1"}
    assert rate_limited(1.2).headers == {"Retry-After": "2"}
    assert rate_limited(1.2).status == 429


def test_a_limiter_needs_a_positive_rate_and_a_burst_of_one() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        RateLimiter(rate=0, burst=1)
