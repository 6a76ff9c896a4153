"""What the ingest routes and the OTLP/gRPC services share: the stores behind group commits,
the metric store, the per-key rate limiter and the Sentry DSN keys.

Each store method takes decoded records (or a raw body it decodes in the calling worker
thread), stores them, in one transaction per store shared with the requests arriving
meanwhile, and returns once they are committed; metric samples go to the embedded TSDB's
in-memory head, which it writes out every flush interval, as it does with scraped samples.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from codequal.api.auth import failure_subjects
from codequal.exceptions import AuthError
from codequal.ingest import IngestError, count_items, loki, otlp, otlp_metrics, remote_write, sentry
from codequal.ingest.batching import GroupCommit
from codequal.ingest.limits import (
    LOKI,
    OTLP,
    SENTRY_ENVELOPE,
    SENTRY_STORE,
    BodyLimit,
    KiB,
    RateLimiter,
    check_content_length,
    decode_body,
    rate_limited,
    read_body,
)
from codequal.security.failures import FailureLimiter
from codequal.security.key_store import KeyStore
from codequal.security.tokens import SCOPE_INGEST_WRITE, Principal
from codequal.storage.db import Database
from codequal.telemetry.metrics import AUTH_FAILURES
from codequal.telemetry.stores.errors import ErrorStore
from codequal.telemetry.stores.logs import LogStore
from codequal.telemetry.stores.spans import SpanStore
from codequal.tsdb.store import SampleStore, store_for

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_RATE",
    "IngestService",
    "principal_key",
    "storage_error",
]

_log = logging.getLogger(__name__)

# Per key: a sustained rate and a burst of requests (not items: a batch is one request).
DEFAULT_RATE = 200.0
DEFAULT_BURST = 400.0
RETRY_AFTER_UNAVAILABLE = "5"
# An envelope no larger than this, decompressed, with at most this many lines (a few items),
# is decoded on the event loop; one event is typically 2 to 20 KiB.
SMALL_ENVELOPE = BodyLimit(compressed=64 * KiB, decompressed=64 * KiB)
SMALL_ENVELOPE_LINES = 16
KEY_CACHE_SECONDS = 2.0
MAX_CACHED_KEYS = 10_000
Clock = Callable[[], float]


# (valid until on the monotonic clock, key id, the project the key may send to)
_Verified = tuple[float, str, int | None]


class _DsnKeys:
    """Checks Sentry DSN keys; a verified key is remembered for ``KEY_CACHE_SECONDS``.

    sentry-sdk sends one request per event, so checking the key in the database each time
    would cost as much as storing the event. A revoked key is therefore refused within
    ``KEY_CACHE_SECONDS`` of its revocation, not at once.
    """

    def __init__(self, keys: KeyStore, clock: Clock) -> None:
        self._keys = keys
        self._clock = clock
        self._verified: dict[bytes, _Verified] = {}  # by the key's sha256
        self._lock = threading.Lock()

    def cached(self, token: str) -> _Verified | None:
        """The remembered verification of ``token``, if still fresh (no I/O: the event loop)."""
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            found = self._verified.get(digest)
        return found if found is not None and found[0] >= time.monotonic() else None

    def verify(self, token: str) -> _Verified:
        """Check ``token`` in the database (a worker thread) and remember the outcome."""
        try:
            principal = self._keys.verify(token, self._clock())
        except AuthError as exc:
            AUTH_FAILURES.labels(reason=exc.reason).inc()
            raise IngestError(401, f"the DSN key is not accepted: {exc.message}") from None
        record = self._keys.get(principal.key_id or "")
        project = None  # a key that may send to no project
        if record is not None and record.kind == "sentry" and principal.has(SCOPE_INGEST_WRITE):
            project = record.project_id
        verified = (time.monotonic() + KEY_CACHE_SECONDS, principal.key_id or "", project)
        with self._lock:
            if len(self._verified) >= MAX_CACHED_KEYS:
                self._verified.clear()
            self._verified[hashlib.sha256(token.encode()).digest()] = verified
        return verified

    @staticmethod
    def admit(verified: _Verified, project_id: int) -> str:
        """The key id, if the key may send to ``project_id``; 403 otherwise."""
        if verified[2] != project_id:
            AUTH_FAILURES.labels(reason="scope").inc()
            raise IngestError(
                403,
                f"this DSN key may not send to project {project_id}: it must be a sentry key for "
                "that project with the ingest:write scope (codequal keys create --sentry-dsn)",
            )
        return verified[1]


T = TypeVar("T")

# Remote write and OTLP metrics (decoding and appending to the metric history) run on one
# thread per process, one request after another. Their work is Python under the GIL: four
# request threads at it together, taking turns at the GIL and at the store's lock, spent more
# CPU per sample than one thread doing the same requests in turn (bench/bench_clients.py,
# remote write, 12 rounds each way: 4.2 -> 3.7 us a sample, 247k -> 280k samples/s, medians).
# The requests waiting for it wait in the event loop, holding their bodies, as they would have
# waited for a worker thread.
_TSDB_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cq-ingest-tsdb")


async def on_tsdb_worker(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` on the metric-history ingest thread, with the caller's context (its
    trace id for log lines)."""
    call = functools.partial(contextvars.copy_context().run, work, *args)
    return await asyncio.get_running_loop().run_in_executor(_TSDB_WORKER, call)


def wait_for_tsdb_worker(work: Callable[..., T], *args: Any) -> T:
    """:func:`on_tsdb_worker` for a thread that is not an event loop's (an OTLP/gRPC call)."""
    return _TSDB_WORKER.submit(contextvars.copy_context().run, work, *args).result()


class IngestService:
    """What the routes (and the OTLP/gRPC services) share: the stores behind group commits, the
    metric store, the per-key rate limiter, DSN keys."""

    def __init__(
        self,
        db: Database,
        ready: threading.Event,
        failures: FailureLimiter,
        limiter: RateLimiter | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.ready = ready
        self.failures = failures
        self.limiter = limiter or RateLimiter(DEFAULT_RATE, DEFAULT_BURST)
        self.clock = clock
        self.logs = GroupCommit(LogStore(db).write)
        self.spans = GroupCommit(SpanStore(db).write)
        self.errors = GroupCommit(ErrorStore(db).record)
        self.samples: SampleStore = store_for(db)
        self.dsn_keys = _DsnKeys(KeyStore(db), clock)

    def verify_dsn_key(self, request: Request, token: str) -> _Verified:
        """A DSN key check that counts failures like the bearer checks: a client (or key id)
        that keeps guessing gets 429 with Retry-After instead of 401."""
        try:
            return self.dsn_keys.verify(token)
        except IngestError as exc:
            if exc.status != 401:
                raise
            client = request.client.host if request.client is not None else "unknown"
            subjects = failure_subjects(client, f"Bearer {token}")
            wait = self.failures.retry_after(subjects, self.clock())
            self.failures.record(subjects, self.clock())
            if wait is None:
                raise
            AUTH_FAILURES.labels(reason="rate_limited").inc()
            seconds = str(max(1, math.ceil(wait)))
            raise IngestError(
                429,
                f"too many failed authentications from this client; retry in {seconds} s",
                {"Retry-After": seconds},
            ) from None

    def admit(self, key: str) -> None:
        """The readiness and per-key rate checks every request passes first."""
        if not self.ready.is_set():
            raise IngestError(503, "the server is starting", {"Retry-After": "1"})
        wait = self.limiter.acquire(key)
        if wait is not None:
            raise rate_limited(wait)

    async def body(self, request: Request, limit: BodyLimit, key: str) -> bytes:
        """The raw body, after the readiness, rate and declared-size checks."""
        self.admit(key)
        check_content_length(request.headers.get("content-length"), limit)
        try:
            return await read_body(request.stream(), limit)
        except ClientDisconnect:
            raise IngestError(400, "the client disconnected before the body was complete") from None

    # -- storing -----------------------------------------------------------------------------
    async def store_sentry(
        self, body: bytes, encoding: str | None, project_id: int, store: bool
    ) -> Any:
        """A small envelope is decoded here and waits for its commit on the loop; else a thread.

        A typical envelope (one event of a few KiB) decodes in less time than handing it to a
        worker thread and back takes; a bounded one cannot hold the loop for longer than the
        interpreter lets a worker thread hold it anyway.
        """
        batch = None if store else self._decode_small_envelope(body, encoding, project_id)
        if batch is None:
            return await run_in_threadpool(self._store_sentry, body, encoding, project_id, store)
        await self.spans.submit_async(batch.spans)
        await self.errors.submit_async(batch.events)
        return _sentry_stored(batch)

    def _decode_small_envelope(
        self, body: bytes, encoding: str | None, project_id: int
    ) -> sentry.SentryBatch | None:
        """The envelope's records, or None if it is too large to decode on the event loop."""
        if len(body) > SMALL_ENVELOPE.compressed:
            return None
        try:
            raw = decode_body(body, encoding, SMALL_ENVELOPE)
        except IngestError as exc:
            if exc.status == 413:  # larger once decompressed: the worker thread decides
                return None
            raise
        if raw.count(b"\n") > SMALL_ENVELOPE_LINES:
            return None
        return sentry.decode_envelope(raw, project_id=project_id, now=self.clock())

    # -- storing (worker threads) ------------------------------------------------------------
    def _store_sentry(self, body: bytes, encoding: str | None, project_id: int, store: bool) -> Any:
        limit = SENTRY_STORE if store else SENTRY_ENVELOPE
        raw = decode_body(body, encoding, limit)
        decode = sentry.decode_store if store else sentry.decode_envelope
        batch = decode(raw, project_id=project_id, now=self.clock())
        self.spans.submit(batch.spans)
        self.errors.submit(batch.events)
        return _sentry_stored(batch)

    def store_otlp(self, kind: str, body: bytes, request: Request, enc: otlp.Encoding) -> bytes:
        raw = decode_body(body, request.headers.get("content-encoding"), OTLP)
        if kind == "traces":
            result = self.otlp_traces(otlp.decode_traces(raw, enc))
        elif kind == "logs":
            result = self.otlp_logs(otlp.decode_logs(raw, enc, self.clock()))
        else:
            result = self.otlp_metrics(otlp_metrics.decode_metrics(raw, enc, self.clock()))
        return otlp.encode_response(_SIGNALS[kind], enc, result)

    # One per OTLP signal: OTLP/HTTP above and the gRPC services store through these.
    def otlp_traces(self, result: otlp.Decoded) -> otlp.Decoded:
        self.spans.submit(result.records)
        count_items(otlp.FORMAT, "span", "accepted", len(result.records))
        count_items(otlp.FORMAT, "span", "rejected", result.rejected)
        return result

    def otlp_logs(self, result: otlp.Decoded) -> otlp.Decoded:
        self.logs.submit(result.records)
        count_items(otlp.FORMAT, "log", "accepted", len(result.records))
        count_items(otlp.FORMAT, "log", "rejected", result.rejected)
        return result

    def otlp_metrics(self, result: otlp.Decoded) -> otlp.Decoded:
        """Append the samples; out-of-order and unindexable ones join the refused points."""
        appended = self.samples.append_resolved(result.records)
        refused = appended.out_of_order + appended.rejected
        count_items(otlp.FORMAT, "sample", "accepted", appended.appended + appended.duplicates)
        count_items(otlp.FORMAT, "sample", "rejected", refused)
        if not refused:
            return result
        reason = result.message or (
            f"{refused} samples refused by the metric store (older than the series' newest "
            "sample, or labels too long to index)"
        )
        return otlp.Decoded([], result.rejected + refused, reason)

    def store_remote_write(self, body: bytes) -> None:
        batch = remote_write.decode_write(body)
        appended = self.samples.append_resolved(batch.samples)
        fmt = remote_write.FORMAT
        count_items(fmt, "sample", "accepted", appended.appended + appended.duplicates)
        count_items(fmt, "sample", "rejected", appended.out_of_order + appended.rejected)
        count_items(fmt, "exemplar_or_histogram", "ignored", batch.skipped)

    def store_loki(self, body: bytes, encoding: str | None, content_type: str | None) -> None:
        raw = decode_body(body, encoding, LOKI)
        entries = loki.decode_push(raw, content_type)
        self.logs.submit(entries)
        count_items(loki.FORMAT, "line", "accepted", len(entries))


_SIGNALS: dict[str, otlp.Signal] = {"traces": "traces", "logs": "logs", "metrics": "metrics"}


def _sentry_stored(batch: sentry.SentryBatch) -> Any:
    """Count a committed batch's items; the answer Sentry SDKs expect."""
    for (kind, outcome), n in batch.counts.items():
        count_items(sentry.FORMAT, kind, outcome, n)
    return {"id": batch.event_id} if batch.event_id else {}


def principal_key(principal: Principal) -> str:
    """The rate limiter's key for a principal: its service key, else its JWT subject."""
    return principal.key_id or f"jwt:{principal.subject}"


def storage_error(exc: sa.exc.SQLAlchemyError) -> IngestError:
    """A refused value is the client's to fix (400); anything else is ours, so retry (503)."""
    if isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError):
        first = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
        return IngestError(400, f"the database refused a value: {first[:300]}")
    _log.warning("ingest could not store a batch", exc_info=True)
    return IngestError(
        503,
        "the database is unavailable; nothing was stored, retry later",
        {"Retry-After": RETRY_AFTER_UNAVAILABLE},
    )
