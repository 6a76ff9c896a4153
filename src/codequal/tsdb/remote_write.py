"""Remote write out: every sample the metric history stores, shipped to a Prometheus remote
write 1.0 receiver (``CODEQUAL_REMOTE_WRITE_URL``): Prometheus with
``--web.enable-remote-write-receiver``, Mimir, Thanos Receive, VictoriaMetrics, Grafana Cloud.

The store offers each appended batch (:meth:`SampleStore.subscribe`); the sender keeps the
samples that are in order for their series (a receiver refuses a whole request for one sample
older than its series' newest) and spools them on disk, as the log sinks spool entries, so a
receiver that is down or slow costs nothing but spool space, and what is spooled at shutdown
goes out at the next start. Delivery retries 5xx, 429 and network errors with the shared
backoff; any other 4xx drops the batch, as remote write 1.0 asks of a sender.

Samples leave as the store takes them, from the moment the sender is configured: history
stored earlier is not backfilled (Prometheus refuses samples older than its head block anyway).
"""

from __future__ import annotations

import struct
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import cramjam
import httpx

from codequal import __version__
from codequal.exceptions import DeliveryError
from codequal.telemetry.sinks.spool import DeliveringSink, Record, SendResult, check_response
from codequal.tsdb import prompb
from codequal.tsdb.promql import Labels
from codequal.tsdb.series_index import label_problem

NAME = "remote_write"
# A spooled record holds at most this many samples; a request at most RECORDS_PER_SEND records,
# which is Prometheus's own default of 2 000 samples a request (max_samples_per_send).
SAMPLES_PER_RECORD = 500
RECORDS_PER_SEND = 4
MAX_TRACKED_SERIES = 1_000_000
_BITS = struct.Struct("<d")
_INT = struct.Struct("<q")

Sample = tuple[Labels, int, float]


def _bits(value: float) -> int:
    # The value's exact bits: JSON has no NaN, and a staleness marker is one particular NaN.
    return int(_INT.unpack(_BITS.pack(value))[0])


def _float(bits: int) -> float:
    return float(_BITS.unpack(_INT.pack(bits))[0])


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without ``user:password@``, and those as Basic auth credentials."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username), unquote(parts.password or ""))


def encode(records: Iterable[Record]) -> bytes:
    """One snappy-compressed WriteRequest holding every sample of ``records``."""
    request = prompb.WriteRequest()
    for record in records:
        for pairs, samples in record.entry["series"]:
            series = request.timeseries.add()
            for name, value in pairs:
                series.labels.add(name=name, value=value)
            for t, bits in samples:
                series.samples.add(timestamp=t, value=_float(bits))
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


class RemoteWriteSender(DeliveringSink):
    """``RemoteWriteSender(url, data_dir)``; the store calls :meth:`offer` with each batch."""

    def __init__(
        self, url: str, data_dir: Path | str, *, timeout: float = 10.0, **options: Any
    ) -> None:
        self.url, credentials = split_credentials(url)
        self._client = httpx.Client(timeout=timeout, auth=credentials)
        self._newest: dict[Labels, int] = {}
        self._lock = threading.Lock()
        options.setdefault("batch_size", RECORDS_PER_SEND)
        options.setdefault("start", False)
        super().__init__(NAME, data_dir, **options)

    def offer(self, batch: Sequence[Sample]) -> None:
        """Spool the samples of ``batch`` that are in order for their series; never raises."""
        try:
            series = self._in_order(batch)
            if series:
                self.enqueue([(t_ns, entry) for t_ns, entry in _records(series)])
        except Exception:  # noqa: BLE001, S110 - a full disk must not fail the store's append
            pass

    def _in_order(self, batch: Sequence[Sample]) -> dict[Labels, list[tuple[int, int]]]:
        out: defaultdict[Labels, list[tuple[int, int]]] = defaultdict(list)
        with self._lock:
            newest = self._newest
            if len(newest) > MAX_TRACKED_SERIES:
                newest.clear()  # forgetting only risks sending an old sample the receiver drops
            for labels, t, value in batch:
                if t <= newest.get(labels, -(2**63)) or label_problem(labels) is not None:
                    continue
                newest[labels] = t
                out[labels].append((t, _bits(value)))
        return out

    def _send(self, records: list[Record]) -> SendResult:
        headers = {
            "Content-Type": prompb.CONTENT_TYPE,
            "Content-Encoding": prompb.CONTENT_ENCODING,
            prompb.VERSION_HEADER: prompb.VERSION,
            "User-Agent": f"codequal/{__version__}",
        }
        try:
            response = self._client.post(self.url, content=encode(records), headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"remote write to {self.url} failed: {exc!r}") from exc
        check_response(response)
        return SendResult([])

    def _close_transport(self) -> None:
        self._client.close()


def _records(
    series: dict[Labels, list[tuple[int, int]]],
) -> Iterable[tuple[int, dict[str, Any]]]:
    """Spool records of at most SAMPLES_PER_RECORD samples, keyed by their first sample's time."""
    chunk: list[list[Any]] = []
    size = 0
    for labels, samples in series.items():
        for start in range(0, len(samples), SAMPLES_PER_RECORD):
            part = samples[start : start + SAMPLES_PER_RECORD]
            chunk.append([list(labels), part])
            size += len(part)
            if size >= SAMPLES_PER_RECORD:
                yield _record(chunk)
                chunk, size = [], 0
    if chunk:
        yield _record(chunk)


def _record(chunk: list[list[Any]]) -> tuple[int, dict[str, Any]]:
    return chunk[0][1][0][0] * 1_000_000, {"series": chunk}
