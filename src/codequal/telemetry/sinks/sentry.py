"""Sentry sink: envelopes, spooled, posted to the DSN's ``/api/<project>/envelope/``.

sentry-sdk still builds and scrubs each event (:mod:`codequal.telemetry._sentry`), but its
transport is :class:`SpoolTransport`, which only appends the serialised envelope to this sink's
spool under the event id; delivery is ours, so events captured while Sentry is down are sent,
in order, once it is back. One envelope per request (Sentry takes at most one event per
envelope), gzip, authenticated with ``X-Sentry-Auth`` from the DSN. A 429 is retried after the
longest of ``X-Sentry-Rate-Limits`` (for the error category, or for all) and ``Retry-After``
(60 s when neither says); a 2xx that announces such a limit holds the rest of the batch as long.
5xx and network errors are retried with backoff; any other 4xx rejects that event (counted as
failed). ``sent_at`` is set when the envelope is actually posted, so Relay's clock-drift
correction does not move a spooled event's timestamp.
"""

from __future__ import annotations

import base64
import gzip
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from sentry_sdk.utils import Dsn

from codequal import __version__
from codequal.telemetry.sinks.otlp import GZIP_LEVEL, retry_after
from codequal.telemetry.sinks.spool import DeliveringSink, Record, SendResult

SINK_NAME = "sentry"
ENVELOPE = "application/x-sentry-envelope"
DEFAULT_RATE_LIMIT = 60.0  # seconds, Sentry's documented default for a bare 429
# Rate-limit categories that hold back our envelopes (events are category "error"; an empty
# category list means every category).
_CATEGORIES = frozenset({"", "error", "default"})


def rate_limit(header: str | None) -> float | None:
    """Seconds an ``X-Sentry-Rate-Limits`` value bars error events for, or None."""
    if not header:
        return None
    longest: float | None = None
    for limit in header.split(","):
        parts = limit.strip().split(":")
        try:
            seconds = float(parts[0])
        except ValueError:
            continue
        categories = set(parts[1].split(";")) if len(parts) > 1 else {""}
        if categories & _CATEGORIES:
            longest = max(longest or 0.0, seconds)
    return longest


def envelope_entry(envelope: Envelope) -> tuple[dict[str, Any], str]:
    """The spool entry for ``envelope`` (headers without ``sent_at``, and the items) and its id."""
    raw = envelope.serialize()
    _, _, items = raw.partition(b"\n")
    headers = {k: v for k, v in envelope.headers.items() if k != "sent_at"}
    event_id = str(headers.get("event_id") or uuid.uuid4().hex)
    entry: dict[str, Any] = {"h": orjson.loads(orjson.dumps(headers, default=str))}
    try:
        entry["i"] = items.decode()
    except UnicodeDecodeError:  # a binary attachment: JSON holds it as base64
        entry["b"] = base64.b64encode(items).decode("ascii")
    return entry, event_id


def envelope_body(entry: dict[str, Any], now: float) -> bytes:
    """The envelope to post: its headers with a fresh ``sent_at``, then its items."""
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    headers = orjson.dumps({**entry["h"], "sent_at": sent_at})
    items = base64.b64decode(entry["b"]) if "b" in entry else str(entry["i"]).encode()
    return headers + b"\n" + items


class SentrySink(DeliveringSink):
    """Delivers spooled envelopes to a Sentry (or any server speaking its envelope API)."""

    def __init__(
        self,
        dsn: str,
        data_dir: Path | str,
        *,
        timeout: float = 10.0,
        name: str = SINK_NAME,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        self.dsn = dsn
        auth = Dsn(dsn).to_auth(f"codequal/{__version__}")
        self.url = auth.get_api_url()
        self._headers = {
            "Content-Type": ENVELOPE,
            "Content-Encoding": "gzip",
            "User-Agent": f"codequal/{__version__}",
            "X-Sentry-Auth": auth.to_header(),
        }
        self._client = httpx.Client(timeout=timeout)
        self._now = clock
        super().__init__(name, data_dir, clock=clock, **options)

    def put(self, envelope: Envelope) -> None:
        """Spool one envelope (called on the forwarder's worker thread; no network I/O)."""
        entry, event_id = envelope_entry(envelope)
        self.enqueue([(time.time_ns(), entry)], [event_id])

    def _send(self, records: list[Record]) -> SendResult:
        """Post each envelope in order; stop at the first one to retry (order is kept)."""
        failed = 0
        for i, record in enumerate(records):
            body = gzip.compress(envelope_body(record.entry, self._now()), GZIP_LEVEL)
            try:
                response = self._client.post(self.url, content=body, headers=self._headers)
            except httpx.HTTPError:
                return SendResult(records[i:], failed)
            status = response.status_code
            limited = rate_limit(response.headers.get("X-Sentry-Rate-Limits"))
            if status == 429 or status >= 500:
                wait = retry_after(response.headers.get("Retry-After"), self._now())
                if status == 429:
                    wait = max(limited or 0.0, wait or 0.0) or DEFAULT_RATE_LIMIT
                return SendResult(records[i:], failed, wait)
            if status >= 300:
                failed += 1  # malformed or too large: sending it again cannot help
            elif limited and i + 1 < len(records):
                return SendResult(records[i + 1 :], failed, limited)
        return SendResult([], failed)

    def _close_transport(self) -> None:
        self._client.close()


class SpoolTransport(Transport):
    """A sentry-sdk transport that hands every envelope to a :class:`SentrySink`."""

    def __init__(self, sink: SentrySink) -> None:
        super().__init__({"dsn": sink.dsn})  # the client reads parsed_dsn from its transport
        self.sink = sink

    def capture_envelope(self, envelope: Envelope) -> None:
        self.sink.put(envelope)


__all__ = ["SINK_NAME", "SentrySink", "SpoolTransport", "envelope_body", "rate_limit"]
