"""Elasticsearch / OpenSearch sink: ``_bulk`` NDJSON into a daily index.

Each document's ``_id`` is the entry's stable spool id, so a retried item overwrites itself
instead of duplicating. A 200 answer with ``errors: true`` is read item by item: 429 and 5xx
items are sent again, other failed items are rejected for good and counted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from codequal.exceptions import DeliveryError
from codequal.redaction import redact_url
from codequal.telemetry.sinks.context import SinkContext
from codequal.telemetry.sinks.spool import (
    DeliveringSink,
    Record,
    SendResult,
    check_response,
)

NDJSON = "application/x-ndjson"


def index_name(prefix: str, ns: int) -> str:
    """The daily index of an entry: ``<prefix>-YYYY.MM.DD`` in UTC."""
    return f"{prefix}-{datetime.fromtimestamp(ns / 1e9, UTC):%Y.%m.%d}"


def bulk_body(records: list[Record], prefix: str) -> bytes:
    """NDJSON: an ``index`` action with ``_index`` and ``_id``, then the document, per entry."""
    lines: list[bytes] = []
    for record in records:
        action = {"index": {"_index": index_name(prefix, record.ns), "_id": record.id}}
        document = {"@timestamp": record.entry.get("timestamp"), **record.entry}
        lines += (orjson.dumps(action), orjson.dumps(document, default=str))
    return b"\n".join(lines) + b"\n"


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _item_status(item: Any) -> int:
    # {"index": {"status": 201, ...}}; anything unreadable is treated as a server error.
    try:
        return int(next(iter(item.values()))["status"])
    except (AttributeError, StopIteration, KeyError, TypeError, ValueError):
        return 500


def bulk_outcome(records: list[Record], answer: dict[str, Any]) -> SendResult:
    """Which items to send again and how many failed for good, from a ``_bulk`` answer."""
    if not answer.get("errors"):
        return SendResult([])
    items = answer.get("items") or []
    if len(items) != len(records):
        raise DeliveryError(f"_bulk answered {len(items)} items for {len(records)} sent")
    retry: list[Record] = []
    failed = 0
    for record, item in zip(records, items, strict=True):
        status = _item_status(item)
        if status < 300:
            continue
        if _retryable(status):
            retry.append(record)
        else:
            failed += 1
    return SendResult(retry, failed)


class ElasticsearchSink(DeliveringSink):
    """Delivers log entries to Elasticsearch or OpenSearch through ``_bulk``."""

    def __init__(
        self,
        url: str,
        data_dir: Path | str,
        index_prefix: str = "codequal-logs",
        *,
        timeout: float = 10.0,
        name: str = "elasticsearch",
        **options: Any,
    ) -> None:
        self._url = url.rstrip("/") + "/_bulk"
        self._prefix = index_prefix
        self._client = httpx.Client(timeout=timeout)
        super().__init__(name, data_dir, **options)

    def _send(self, records: list[Record]) -> SendResult:
        try:
            response = self._client.post(
                self._url,
                content=bulk_body(records, self._prefix),
                headers={"Content-Type": NDJSON},
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"_bulk to {redact_url(self._url)} failed: {exc!r}") from exc
        check_response(response)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise DeliveryError(f"_bulk answered with invalid JSON: {exc}") from exc
        return bulk_outcome(records, answer)

    def _close_transport(self) -> None:
        self._client.close()


__all__ = ["ElasticsearchSink", "bulk_body", "bulk_outcome", "index_name"]


def from_context(ctx: SinkContext) -> ElasticsearchSink | None:
    """On with CODEQUAL_ELASTICSEARCH_URL."""
    config = ctx.config
    if not config.elasticsearch_url:
        return None
    return ElasticsearchSink(config.elasticsearch_url, config.data_dir)
