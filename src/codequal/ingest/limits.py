"""Body size limits, Content-Encoding decoding with a bounded output, and a per-key rate limiter.

A body is refused as early as possible: by its declared Content-Length before a byte is read,
then by counting while it streams in, then by counting while it is decompressed (a few KiB of
gzip can expand to gigabytes, so the output is capped, never the input alone).
"""

from __future__ import annotations

import importlib
import math
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from codequal.ingest import IngestError

KiB = 1024
MiB = 1024 * KiB

Clock = Callable[[], float]


@dataclass(frozen=True)
class BodyLimit:
    """How large a request body may be on the wire and after Content-Encoding is undone."""

    compressed: int
    decompressed: int


# Sentry's documented limits (docs.sentry.io "Size Limits", Relay's `limits.*` options):
# an event is refused above 200 KB compressed or 1 MiB decompressed; a whole request above
# 20 MB compressed or 100 MB decompressed.
SENTRY_STORE = BodyLimit(compressed=200 * KiB, decompressed=1 * MiB)
SENTRY_ENVELOPE = BodyLimit(compressed=20 * MiB, decompressed=100 * MiB)
SENTRY_EVENT_ITEM = 1 * MiB  # Relay's max_event_size, per event or transaction item
# sentry-sdk 3 streams spans as containers of at most 1 000 spans and flushes a trace's buffer at
# an estimated 5 MB; twice that leaves room for the estimate's error.
SENTRY_SPAN_CONTAINER = 10 * MiB
SENTRY_SPANS_PER_CONTAINER = 1000
# The OpenTelemetry Collector's confighttp default for max_request_body_size is 20 MiB.
OTLP = BodyLimit(compressed=20 * MiB, decompressed=64 * MiB)
# Loki refuses a push above its 6 MB ingestion burst anyway; 10 MiB on the wire leaves room for
# the labels and framing around the lines.
LOKI = BodyLimit(compressed=10 * MiB, decompressed=32 * MiB)


def size_text(n: int) -> str:
    """``10 MiB``, ``200 KiB``: a limit as error messages show it."""
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n // KiB} KiB"


def too_large(what: str, limit: int) -> IngestError:
    return IngestError(413, f"{what} is larger than this endpoint's limit of {size_text(limit)}")


def check_content_length(header: str | None, limit: BodyLimit) -> None:
    """Refuse a declared body that is too large, before reading any of it."""
    if header is None:
        return
    try:
        declared = int(header)
    except ValueError:
        raise IngestError(400, f"Content-Length {header[:40]!r} is not a number") from None
    if declared > limit.compressed:
        raise too_large(f"the body ({declared} bytes)", limit.compressed)


async def read_body(chunks: AsyncIterator[bytes], limit: BodyLimit) -> bytes:
    """The whole body, counted while it streams in: a chunked body cannot exceed the limit."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit.compressed:
            raise too_large("the body", limit.compressed)
    return bytes(body)


# -- Content-Encoding ----------------------------------------------------------------------
def decode_body(body: bytes, content_encoding: str | None, limit: BodyLimit) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate, br, identity; stacked ones in reverse)."""
    encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
    for encoding in reversed(encodings):
        decoder = _DECODERS.get(encoding)
        if decoder is None:
            raise IngestError(
                415,
                f"Content-Encoding {encoding[:40]!r} is not supported; "
                "send gzip, deflate, br or an uncompressed body",
            )
        try:
            body = decoder(body, limit.decompressed)
        except IngestError as exc:
            if exc.status == 413:  # say which limit, whichever stream of the body crossed it
                raise too_large("the decompressed body", limit.decompressed) from None
            raise
    if len(body) > limit.decompressed:
        raise too_large("the decompressed body", limit.decompressed)
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    out = bytearray()
    data = body
    # A gzip stream may hold several members one after the other (RFC 1952 section 2.2).
    while True:
        chunk, data = _inflate(data, 16 + zlib.MAX_WBITS, limit - len(out), "gzip")
        out += chunk
        if not data.strip(b"\x00"):  # some writers pad the end with zeros
            return bytes(out)


def _inflate_any(body: bytes, limit: int) -> bytes:
    # HTTP "deflate" is the zlib format (RFC 9110 8.4.1.2), but some clients send raw deflate.
    try:
        out, rest = _inflate(body, zlib.MAX_WBITS, limit, "deflate")
    except IngestError as exc:
        if exc.status != 400:
            raise
        try:
            out, rest = _inflate(body, -zlib.MAX_WBITS, limit, "deflate")
        except IngestError:
            raise exc from None
    if rest.strip(b"\x00"):
        raise IngestError(400, "the deflate body has data after the end of its stream")
    return out


def _inflate(data: bytes, wbits: int, budget: int, name: str) -> tuple[bytes, bytes]:
    """One compressed stream: its output (at most ``budget`` bytes) and the bytes after it."""
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(data, budget + 1)
    except zlib.error as exc:
        raise IngestError(400, f"the body is not valid {name} data ({exc})") from None
    if len(out) > budget or decompressor.unconsumed_tail:
        raise IngestError(413, "the decompressed body is larger than this endpoint's limit")
    if not decompressor.eof:
        raise IngestError(400, f"the {name} body is truncated: its stream ends early")
    return out, decompressor.unused_data


def _unbrotli(body: bytes, limit: int) -> bytes:
    if _brotli is None:
        raise IngestError(415, "Content-Encoding br is not supported by this server; use gzip")
    decompressor = _brotli.Decompressor()
    try:
        # The output buffer stops growing at the limit, so a brotli bomb costs limit + 1 bytes.
        out: bytes = decompressor.process(body, output_buffer_limit=limit + 1)
    except _brotli.error as exc:
        raise IngestError(400, f"the body is not valid brotli data ({exc})") from None
    if len(out) > limit:
        raise IngestError(413, "the decompressed body is larger than this endpoint's limit")
    if not decompressor.is_finished():
        raise IngestError(400, "the brotli body is truncated: its stream ends early")
    return out


def _load_brotli() -> Any:
    # Imported by name: the module is optional, and its published stubs lack the
    # output_buffer_limit argument (brotli >= 1.2) that bounds decompression.
    try:
        return importlib.import_module("brotli")
    except ImportError:
        return None


_brotli = _load_brotli()

_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "identity": lambda body, _limit: body,
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate_any,
    "br": _unbrotli,
}


# -- rate limiting -------------------------------------------------------------------------
@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second on average, ``burst`` at once.

    ``clock`` is injectable (monotonic seconds) so tests step time instead of sleeping. At most
    ``max_keys`` buckets are kept; the least recently used goes first, which only ever gives
    that key a full bucket again.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Clock = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: str, cost: float = 1.0) -> float | None:
        """Take ``cost`` tokens for ``key``; None when allowed, else seconds until it would be."""
        cost = min(cost, self.burst)  # a cost above the burst could never be paid
        now = self._clock()
        with self._lock:
            bucket = self._bucket(key, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            # The epsilon absorbs float rounding: 0.1 s at 10/s must buy exactly one token.
            if bucket.tokens + 1e-9 >= cost:
                bucket.tokens = max(0.0, bucket.tokens - cost)
                return None
            return (cost - bucket.tokens) / self.rate

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            self._buckets.move_to_end(key)
        return bucket


def rate_limited(wait: float) -> IngestError:
    """The 429 for a request over its key's rate; Retry-After in whole seconds, at least 1."""
    seconds = max(1, math.ceil(wait))
    return IngestError(
        429,
        f"this key is over its ingest rate limit; retry in {seconds} s",
        {"Retry-After": str(seconds)},
    )
