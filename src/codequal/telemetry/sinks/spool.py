"""Delivery to a destination that may be down: an on-disk spool and a retrying sender.

:meth:`DeliveringSink.write` runs on the log pipeline's worker thread and only appends the
batch to the sink's spool, so code that logs never waits on the network. A delivery thread
sends batches from the spool head in order, retries with exponential backoff and full jitter,
and removes a batch once every item was delivered or rejected for good; what is left at
shutdown goes out at the next start. Each entry gets a stable id when spooled, so duplicates
from at-least-once delivery are recognisable. Format: ``<name>.spool``, records ``<u32 length>
<JSON [seq, id, ns, entry]>``, and ``<name>.head``, the offset of the first undelivered one.
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson

from codequal.exceptions import DeliveryError
from codequal.retry import Backoff
from codequal.telemetry.logging import LogEntry
from codequal.telemetry.metrics import (
    SINK_DROPPED,
    SINK_FAILED,
    SINK_LAST_SUCCESS,
    SINK_QUEUE_DEPTH,
    SINK_RETRIED,
    SINK_SENT,
    SINK_SPOOL_BYTES,
    SINK_SPOOLED,
)

DEFAULT_SPOOL_BYTES = 64 * 1024 * 1024
_LEN = struct.Struct(">I")
_COMPACT_AT = 1024 * 1024  # rewrite the segment once this many delivered bytes lead it


class Record(NamedTuple):
    """One spooled entry: spool sequence, stable id, epoch nanoseconds, ``LogEntry.to_dict()``."""

    seq: int
    id: str
    ns: int
    entry: dict[str, Any]


class _Slot(NamedTuple):
    seq: int
    end: int  # file offset just past this record
    raw: bytes


class Spool:
    """The append-only segment of one sink. Thread-safe."""

    def __init__(self, directory: Path, name: str, max_bytes: int = DEFAULT_SPOOL_BYTES) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{name}.spool"
        self._head_path = directory / f"{name}.head"
        self._max = max_bytes
        self._lock = threading.Lock()
        self._slots: deque[_Slot] = deque()
        # undelivered bytes, file offsets of the first undelivered record and of the end
        self._bytes = self._head = self._end = self._seq = 0
        self._nonce = os.urandom(6).hex()  # ids stay unique across restarts
        self._load()
        self._file = self.path.open("ab")

    def _load(self) -> None:
        data = self.path.read_bytes() if self.path.exists() else b""
        with contextlib.suppress(OSError, ValueError):
            self._head = int(self._head_path.read_text())
        pos = self._head = self._head if 0 <= self._head <= len(data) else 0
        while pos + 4 <= len(data):
            (size,) = _LEN.unpack_from(data, pos)
            raw = data[pos + 4 : pos + 4 + size]
            try:
                seq = int(orjson.loads(raw)[0]) if len(raw) == size else -1
            except (orjson.JSONDecodeError, TypeError, ValueError, IndexError):
                seq = -1
            if seq < 0:
                break  # a record torn by a crash: everything after it is unreadable
            pos += 4 + size
            self._slots.append(_Slot(seq, pos, raw))
            self._bytes += 4 + size
            self._seq = seq + 1
        if pos < len(data):
            with self.path.open("r+b") as f:
                f.truncate(pos)
        self._end = pos

    def append(
        self, items: Sequence[tuple[int, dict[str, Any]]], ids: Sequence[str] | None = None
    ) -> int:
        """Spool ``(ns, entry)`` pairs; returns how many old records the cap dropped.

        ``ids`` are the entries' own stable ids (a span's, an event's); by default each gets
        a fresh one.
        """
        with self._lock:
            chunks: list[bytes] = []
            for i, (ns, entry) in enumerate(items):
                seq = self._seq
                self._seq += 1
                rid = ids[i] if ids is not None else f"{self._nonce}-{seq:x}"
                raw = orjson.dumps([seq, rid, ns, entry], default=str)
                chunks += (_LEN.pack(len(raw)), raw)
                self._end += 4 + len(raw)
                self._slots.append(_Slot(seq, self._end, raw))
                self._bytes += 4 + len(raw)
            self._file.write(b"".join(chunks))
            self._file.flush()
            dropped = 0
            while self._bytes > self._max and self._slots:
                self._pop()
                dropped += 1
            if dropped:
                self._commit()
            return dropped

    def peek(self, limit: int) -> list[Record]:
        """The first ``limit`` undelivered records, oldest first."""
        with self._lock:
            raws = [slot.raw for _, slot in zip(range(limit), self._slots, strict=False)]
        return [Record(*orjson.loads(raw)) for raw in raws]

    def ack(self, upto_seq: int) -> None:
        """Remove every record up to and including ``upto_seq`` (delivered or rejected)."""
        with self._lock:
            while self._slots and self._slots[0].seq <= upto_seq:
                self._pop()
            self._commit()

    def depth(self) -> int:
        return len(self._slots)

    def size(self) -> int:
        return self._bytes

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _pop(self) -> None:
        slot = self._slots.popleft()
        self._bytes -= 4 + len(slot.raw)
        self._head = slot.end

    def _commit(self) -> None:
        if self._head >= _COMPACT_AT and self._head > self._bytes:
            self._compact()
        else:
            self._write_head(self._head)

    def _write_head(self, offset: int) -> None:
        tmp = self._head_path.with_suffix(".head-tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self._head_path)

    def _compact(self) -> None:
        tmp = self.path.with_suffix(".spool-tmp")
        slots, pos = deque[_Slot](), 0
        with tmp.open("wb") as f:
            for slot in self._slots:
                f.write(_LEN.pack(len(slot.raw)) + slot.raw)
                pos += 4 + len(slot.raw)
                slots.append(_Slot(slot.seq, pos, slot.raw))
            f.flush()
            os.fsync(f.fileno())
        self._file.close()
        # A crash between these two lines re-reads delivered records: duplicates, never loss.
        self._write_head(0)
        os.replace(tmp, self.path)
        self._slots, self._head, self._end = slots, 0, pos
        self._file = self.path.open("ab")


class SendResult(NamedTuple):
    """What became of a batch: items to send again, and how many were rejected for good."""

    retry: list[Record]
    failed: int = 0
    retry_after: float | None = None


def check_response(response: httpx.Response) -> None:
    """Raise :class:`DeliveryError` for a non-2xx answer: 429 and 5xx are retryable."""
    status = response.status_code
    if status < 300:
        return
    retryable = status == 429 or status >= 500
    raise DeliveryError(
        f"HTTP {status}: {response.text[:200]}",
        permanent=not retryable,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: the backoff alone decides


def entry_ns(entry: LogEntry) -> int:
    """Epoch nanoseconds, exact to the microsecond a float timestamp carries."""
    return round(entry.timestamp * 1_000_000) * 1000


class DeliveringSink:
    """Base of the remote sinks: spool on write, deliver on a thread. Subclasses own ``_send``."""

    def __init__(
        self,
        name: str,
        data_dir: Path | str,
        *,
        batch_size: int = 500,
        max_spool_bytes: int = DEFAULT_SPOOL_BYTES,
        backoff: Backoff | None = None,
        sleep: Callable[[float], object] | None = None,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
        close_timeout: float = 2.0,
        start: bool = True,
    ) -> None:
        self.name = name
        self.spool = Spool(Path(data_dir) / "spool", name, max_spool_bytes)
        self._batch = batch_size
        self._close_timeout = close_timeout
        self._backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._rand = rand
        self._clock = clock
        self._wake = threading.Event()
        self._closing = False
        self._deadline = float("inf")
        self._failing = False
        self._metrics = [m.labels(sink=name) for m in (SINK_SENT, SINK_FAILED, SINK_RETRIED)]
        self._spooled = SINK_SPOOLED.labels(sink=name)
        self._dropped = SINK_DROPPED.labels(sink=name)
        self._thread: threading.Thread | None = None
        self._settled = threading.Condition()  # notified whenever the spool head moves
        self._gauges()
        if start:
            self.start()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"cq-sink-{self.name}")
            self._thread.daemon = True
            self._thread.start()

    def write(self, entries: Sequence[LogEntry]) -> None:
        """Spool the batch and wake the sender; no network I/O here."""
        self.enqueue([(entry_ns(e), e.to_dict()) for e in entries])

    def enqueue(
        self, items: Sequence[tuple[int, dict[str, Any]]], ids: Sequence[str] | None = None
    ) -> None:
        """Spool ``(ns, entry)`` pairs (with their stable ``ids``, if they have their own)."""
        dropped = self.spool.append(items, ids)
        self._spooled.inc(len(items))
        if dropped:
            self._dropped.inc(dropped)
        self._gauges()
        self._wake.set()

    def close(self) -> None:
        """The :class:`Sink` protocol's close: :meth:`shutdown` with the sink's close timeout."""
        self.shutdown(self._close_timeout)

    def shutdown(self, timeout: float) -> bool:
        """Deliver what can be delivered within ``timeout``; the rest stays spooled."""
        self._deadline = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._stop.set()
            self._thread.join(1.0)
            self._thread = None
        self.spool.close()
        self._close_transport()
        return self.spool.depth() == 0

    def wait_delivered(self, timeout: float) -> bool:
        """Wait until the spool is empty (delivered or rejected); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._settled:
            while self.spool.depth():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._settled.wait(min(remaining, 0.1))
        return True

    def health(self) -> str:
        """``degraded`` while the destination fails and entries wait, else ``ok``."""
        return "degraded" if self._failing and self.spool.depth() else "ok"

    def deliver_batch(self) -> bool:
        """Send the spool head until it is settled or closing runs out; False when empty."""
        batch = self.spool.peek(self._batch)
        if not batch:
            return False
        sent, failed, retried = self._metrics
        pending, attempt = batch, 0
        while pending:
            result = self._attempt(pending)
            sent.inc(len(pending) - len(result.retry) - result.failed)
            failed.inc(result.failed)
            if not result.retry:
                break
            self._failing = True
            retried.inc(len(result.retry))
            delay = self._backoff.delay(attempt + 1, self._rand(), result.retry_after)
            if not self._pause(delay):
                return True  # shutting down: the batch stays spooled for the next start
            pending, attempt = result.retry, attempt + 1
        self.spool.ack(batch[-1].seq)
        self._failing = False
        SINK_LAST_SUCCESS.labels(sink=self.name).set(self._clock())
        self._gauges()
        with self._settled:
            self._settled.notify_all()
        return True

    def _attempt(self, pending: list[Record]) -> SendResult:
        try:
            return self._send(pending)
        except DeliveryError as exc:
            if exc.permanent:
                return SendResult([], len(pending))
            return SendResult(pending, 0, exc.retry_after)
        except Exception:  # noqa: BLE001 - a sender bug must not kill delivery; retry later
            return SendResult(pending)

    def _pause(self, delay: float) -> bool:
        if self._closing and time.monotonic() + delay > self._deadline:
            return False
        self._sleep(delay)
        return not self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._closing and (not self.spool.depth() or time.monotonic() > self._deadline):
                return
            if not self.deliver_batch():
                self._wake.wait(0.5)
                self._wake.clear()

    def _gauges(self) -> None:
        SINK_QUEUE_DEPTH.labels(sink=self.name).set(self.spool.depth())
        SINK_SPOOL_BYTES.labels(sink=self.name).set(self.spool.size())

    def _send(self, records: list[Record]) -> SendResult:
        """Deliver ``records``; raise :class:`DeliveryError` when the whole batch failed."""
        raise NotImplementedError

    def _close_transport(self) -> None:
        """Release the HTTP client; subclasses override."""
