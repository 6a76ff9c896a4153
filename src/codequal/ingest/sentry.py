"""Sentry's ingest protocol: the DSN key, the envelope format and the legacy store body.

An envelope is a JSON header line, then items: each a JSON item header line and a payload that
is either ``length`` bytes long or runs to the next newline (develop.sentry.dev "Envelopes").
Items of type ``event`` become error events; ``transaction`` (sentry-sdk 2) and ``span``
(sentry-sdk 3 streams span containers, ``application/vnd.sentry.items.span.v2+json``) become
spans; every other type is accepted and counted, not stored.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections import Counter as Tally
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from codequal.ingest import IngestError
from codequal.ingest.limits import (
    SENTRY_EVENT_ITEM,
    SENTRY_SPAN_CONTAINER,
    SENTRY_STORE,
    too_large,
)
from codequal.ingest.sentry_event import error_event, event_id_of, span_items, transaction_spans
from codequal.telemetry.errors import ErrorEvent
from codequal.telemetry.stores.spans import SpanRecord

FORMAT = "sentry"
# Item types Sentry defines; anything else is counted as "other" so the label stays bounded.
KNOWN_TYPES = frozenset(
    {
        "event", "transaction", "attachment", "session", "sessions", "client_report",
        "user_report", "feedback", "check_in", "profile", "profile_chunk", "replay_event",
        "replay_recording", "replay_video", "statsd", "metric_buckets", "span", "log",
        "otel_log", "security", "raw_security", "nel", "unreal_report", "form_data",
    }
)  # fmt: skip
_STORED_TYPES = ("event", "transaction", "span")
MAX_AUTH_HEADER = 2048


@dataclass
class SentryBatch:
    """What one request carries, ready to store, and what to count once it is stored."""

    events: list[ErrorEvent] = field(default_factory=list)
    spans: list[SpanRecord] = field(default_factory=list)
    event_id: str | None = None
    # (item type, outcome) -> number of items
    counts: Tally[tuple[str, str]] = field(default_factory=Tally)


# -- authentication --------------------------------------------------------------------------
def header_key(auth_header: str | None) -> str | None:
    """The DSN public key from ``X-Sentry-Auth: Sentry sentry_key=...``; None if it has none."""
    if auth_header:
        scheme, _, params = auth_header[:MAX_AUTH_HEADER].strip().partition(" ")
        if scheme.lower() == "sentry":
            for part in params.split(","):
                name, _, value = part.strip().partition("=")
                if name.strip() == "sentry_key" and value.strip():
                    return value.strip()
    return None


def public_key(auth_header: str | None, query_key: str | None) -> str:
    """The DSN public key from ``X-Sentry-Auth: Sentry sentry_key=...`` or ``?sentry_key=``."""
    found = header_key(auth_header)
    if found is not None:
        return found
    if query_key:
        return query_key.strip()
    raise IngestError(
        401,
        "this endpoint needs the DSN's public key: an 'X-Sentry-Auth: Sentry sentry_key=<key>' "
        "header or a sentry_key query parameter",
    )


# -- envelopes -------------------------------------------------------------------------------
def _line(body: bytes, pos: int) -> tuple[bytes, int]:
    end = body.find(b"\n", pos)
    return (body[pos:], len(body)) if end < 0 else (body[pos:end], end + 1)


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise IngestError(400, f"{what} must be a JSON object")
    return value


def split_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """The envelope header and its (item header, payload) pairs; IngestError on bad framing."""
    if not body.strip():
        raise IngestError(400, "the envelope is empty: it needs at least a header line")
    raw_header, pos = _line(body, 0)
    header = _object(raw_header, "the envelope header")
    items: list[tuple[dict[str, Any], bytes]] = []
    while pos < len(body):
        if body[pos] == 0x0A:  # blank lines after the last item
            pos += 1
            continue
        raw_item, pos = _line(body, pos)
        item = _object(raw_item, f"the header of item {len(items)}")
        payload, pos = _payload(body, pos, item.get("length"), len(items))
        items.append((item, payload))
    return header, items


def _payload(body: bytes, pos: int, length: Any, index: int) -> tuple[bytes, int]:
    if length is None:
        return _line(body, pos)
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise IngestError(400, f"item {index} has length {length!r}; it must be a whole number")
    end = pos + length
    if end > len(body):
        raise IngestError(
            400,
            f"item {index} declares {length} bytes but only {len(body) - pos} follow: "
            "the envelope is truncated",
        )
    # The newline after a payload of known length is optional.
    return body[pos:end], end + 1 if body[end : end + 1] == b"\n" else end


def decode_envelope(body: bytes, *, project_id: int, now: float) -> SentryBatch:
    """An envelope's events and transactions as records; other item types only counted."""
    header, items = split_envelope(body)
    batch = SentryBatch(event_id=_envelope_event_id(header))
    for index, (item, payload) in enumerate(items):
        kind = item.get("type")
        label = kind if isinstance(kind, str) and kind in KNOWN_TYPES else "other"
        if label not in _STORED_TYPES:
            batch.counts[label, "ignored"] += 1
            continue
        limit = SENTRY_SPAN_CONTAINER if label == "span" else SENTRY_EVENT_ITEM
        if len(payload) > limit:
            raise too_large(f"item {index} ({label}, {len(payload)} bytes)", limit)
        data = _object(payload, f"item {index} ({label})")
        _add(batch, label, data, project_id, now)
    return batch


def _envelope_event_id(header: Mapping[str, Any]) -> str | None:
    found = header.get("event_id")
    return event_id_of(found) if isinstance(found, str) else None


def _add(batch: SentryBatch, kind: str, data: dict[str, Any], project_id: int, now: float) -> None:
    if kind == "event":
        event = error_event(data, project_id=project_id, now=now, event_id=batch.event_id)
        batch.events.append(event)
        batch.event_id = batch.event_id or event.event_id
        batch.counts["event", "accepted"] += 1
        return
    if kind == "span":
        spans, rejected = span_items(data, project_id=project_id, now=now)
        batch.spans.extend(spans)
        batch.counts["span", "accepted"] += len(spans)
        batch.counts["span", "rejected"] += rejected
        return
    spans, rejected = transaction_spans(data, project_id=project_id, now=now)
    batch.spans.extend(spans)
    batch.counts["transaction", "accepted" if spans else "rejected"] += 1
    if rejected:
        batch.counts["span", "rejected"] += rejected
    batch.event_id = batch.event_id or event_id_of(data.get("event_id"))


# -- the legacy store endpoint -----------------------------------------------------------------
def decode_store(body: bytes, *, project_id: int, now: float) -> SentryBatch:
    """A ``/store/`` body: one event as JSON, or (old SDKs) base64 of zlib-compressed JSON."""
    if not body.lstrip().startswith(b"{"):
        body = _unpack_legacy(body)
    data = _object(body, "the event")
    batch = SentryBatch()
    if data.get("type") == "transaction":
        _add(batch, "transaction", data, project_id, now)
    else:
        _add(batch, "event", data, project_id, now)
    return batch


def _unpack_legacy(body: bytes) -> bytes:
    try:
        packed = base64.b64decode(body.strip(), validate=True)
    except binascii.Error:
        raise IngestError(400, "the event is neither JSON nor base64-encoded zlib JSON") from None
    decompressor = zlib.decompressobj()
    try:
        out = decompressor.decompress(packed, SENTRY_STORE.decompressed + 1)
    except zlib.error as exc:
        raise IngestError(400, f"the base64 event is not zlib data ({exc})") from None
    if len(out) > SENTRY_STORE.decompressed:
        raise too_large("the decompressed event", SENTRY_STORE.decompressed)
    if not decompressor.eof:
        raise IngestError(400, "the zlib event is truncated: its stream ends early")
    return out
