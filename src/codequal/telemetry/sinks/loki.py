"""Loki sink: JSON pushes to ``/loki/api/v1/push`` through the delivering spool.

Labels are bounded and static: ``service``, ``level`` and the operator's static labels
(``environment`` by default). Ids (trace, user, entry) go into the JSON line, never into
labels, so the number of Loki streams does not grow with traffic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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

PUSH_PATH = "/loki/api/v1/push"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DYNAMIC = ("service", "level")
MAX_STATIC_LABELS = 8


def validate_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Static labels, checked once: Loki's name syntax, few of them, none of ours overridden."""
    if len(labels) > MAX_STATIC_LABELS:
        raise ValueError(f"Loki sink: at most {MAX_STATIC_LABELS} static labels, got {len(labels)}")
    for name in labels:
        if not _LABEL_NAME.match(name) or name in _DYNAMIC:
            raise ValueError(
                f"Loki sink: static label {name!r} must match [a-zA-Z_][a-zA-Z0-9_]* and not "
                f"be one of {_DYNAMIC} (those come from each entry)"
            )
    return {str(k): str(v) for k, v in labels.items()}


def push_payload(records: list[Record], static: Mapping[str, str]) -> dict[str, Any]:
    """The push body: one stream per (service, level), values oldest first in each stream."""
    streams: dict[tuple[str, str], list[list[str]]] = {}
    for record in records:
        key = (str(record.entry.get("service", "")), str(record.entry.get("level", "")))
        line = orjson.dumps({"id": record.id, **record.entry}).decode()
        streams.setdefault(key, []).append([str(record.ns), line])
    return {
        "streams": [
            {
                "stream": {"service": service, "level": level, **static},
                "values": sorted(values, key=lambda v: int(v[0])),  # stable: ties keep order
            }
            for (service, level), values in streams.items()
        ]
    }


class LokiSink(DeliveringSink):
    """Delivers log entries to Loki; 429/5xx/timeouts retried, other 4xx dropped and counted."""

    def __init__(
        self,
        url: str,
        data_dir: Path | str,
        labels: Mapping[str, str] | None = None,
        *,
        timeout: float = 5.0,
        name: str = "loki",
        **options: Any,
    ) -> None:
        self._url = url.rstrip("/") + PUSH_PATH
        self._static = validate_labels(labels if labels is not None else {})
        self._client = httpx.Client(timeout=timeout)
        super().__init__(name, data_dir, **options)

    def _send(self, records: list[Record]) -> SendResult:
        body = orjson.dumps(push_payload(records, self._static))
        try:
            response = self._client.post(
                self._url, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"Loki push to {redact_url(self._url)} failed: {exc!r}") from exc
        check_response(response)
        return SendResult([])

    def _close_transport(self) -> None:
        self._client.close()


__all__ = ["LokiSink", "push_payload", "validate_labels"]


def from_context(ctx: SinkContext) -> LokiSink | None:
    """On with CODEQUAL_LOKI_URL; the environment becomes a stream label."""
    config = ctx.config
    if not config.loki_url:
        return None
    return LokiSink(config.loki_url, config.data_dir, {"environment": config.environment})
