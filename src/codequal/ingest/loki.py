"""Loki's push API: ``POST /loki/api/v1/push`` as JSON, or as snappy-compressed protobuf.

Each stream is a label set and its lines; a line becomes a :class:`LogEntry` whose service comes
from the ``service`` / ``service_name`` / ``job`` label and whose level comes from the line's
structured metadata (``level``, ``severity`` or ``detected_level``), else the stream's label of
those names (python-logging-loki sends ``severity``), else the line itself (JSON or logfmt).
Labels are checked against Loki's default limits, and a request over one is refused whole with
a 400 naming the limit, as Loki does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import cramjam
import orjson
from google.protobuf.message import DecodeError

from codequal.ingest import SERVICE_WIDTH, IngestError, clean, is_hex_id, level_from_text
from codequal.ingest import new_trace_id as _new_trace_id
from codequal.ingest.limits import LOKI, too_large
from codequal.ingest.logproto import PushRequest
from codequal.telemetry.logging import LogEntry
from codequal.vocabulary import Level

FORMAT = "loki"
# Loki's defaults (limits_config): the names say which one a 400 is about.
MAX_LABEL_NAMES = 15  # max_label_names_per_series
MAX_LABEL_NAME_LENGTH = 1024  # max_label_name_length
MAX_LABEL_VALUE_LENGTH = 2048  # max_label_value_length
MAX_LINE_SIZE = 256 * 1024  # max_line_size
ACTION_WIDTH = 500  # the store keeps this much of a line in `action`; longer ones go in metadata

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SELECTOR_PAIR = re.compile(
    r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)', re.S
)
_LOGFMT_LEVEL = re.compile(r'(?:^|\s)(?:level|lvl|severity)="?([A-Za-z]+)')
_SERVICE_LABELS = ("service", "service_name", "job")
_LEVEL_LABELS = ("level", "severity", "detected_level")
_LINE_LEVEL_KEYS = ("level", "lvl", "severity", "log.level")
_TRACE_KEYS = ("trace_id", "traceID", "traceId", "traceid")

Values = Iterable[tuple[float, str, dict[str, str] | None]]


def decode_push(body: bytes, content_type: str | None) -> list[LogEntry]:
    """Every line of a push request as a LogEntry; IngestError when any of it is invalid."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media == "application/json":
        streams = _json_streams(body)
    elif media == "application/x-protobuf":
        streams = _proto_streams(body)
    else:
        raise IngestError(
            415, "Content-Type must be application/json or application/x-protobuf (snappy)"
        )
    entries: list[LogEntry] = []
    for index, (labels, values) in enumerate(streams):
        check_labels(index, labels)
        entries.extend(_Stream(labels).entries(index, values))
    return entries


def check_labels(index: int, labels: Mapping[str, str]) -> None:
    """Loki's label limits; the message names the stream and the limit it broke."""
    where = f"stream {index}"
    if not labels:
        raise IngestError(400, f"{where} has no labels; Loki needs at least one per stream")
    if len(labels) > MAX_LABEL_NAMES:
        raise IngestError(
            400,
            f"{where} has {len(labels)} labels; the limit is {MAX_LABEL_NAMES} "
            "(max_label_names_per_series)",
        )
    for name, value in labels.items():
        if len(name) > MAX_LABEL_NAME_LENGTH:
            raise IngestError(
                400,
                f"{where} has a label name of {len(name)} characters; the limit is "
                f"{MAX_LABEL_NAME_LENGTH} (max_label_name_length)",
            )
        if not _LABEL_NAME.fullmatch(name):
            raise IngestError(400, f"{where} has an invalid label name {name[:100]!r}")
        if len(value) > MAX_LABEL_VALUE_LENGTH:
            raise IngestError(
                400,
                f"{where} label {name!r} has a value of {len(value)} characters; the limit is "
                f"{MAX_LABEL_VALUE_LENGTH} (max_label_value_length)",
            )


class _Stream:
    """What every line of one stream shares: service, level label, the labels as metadata."""

    def __init__(self, labels: dict[str, str]) -> None:
        found = next((labels[k] for k in _SERVICE_LABELS if labels.get(k)), "unknown")
        self.service = found[:SERVICE_WIDTH]
        self.level = _labelled_level(labels)
        self.labels = labels
        self.metadata = {"labels": labels}  # one dict, shared by the stream's plain lines

    def entries(self, index: int, values: Values) -> Iterator[LogEntry]:
        service, level, metadata = self.service, self.level, self.metadata
        for ts, line, structured in values:
            if len(line) > MAX_LINE_SIZE:
                raise IngestError(
                    400,
                    f"stream {index} has a line of {len(line)} characters; the limit is "
                    f"{MAX_LINE_SIZE} (max_line_size)",
                )
            trace_id = _trace_id(structured)
            meta: dict[str, Any] = metadata
            if structured or len(line) > ACTION_WIDTH:
                meta = {"labels": self.labels}
                if structured:
                    meta["structured_metadata"] = structured
                if len(line) > ACTION_WIDTH:  # the action column keeps 500 characters
                    meta["line"] = line
            found = (_labelled_level(structured) if structured else None) or level
            yield LogEntry(ts, found or _line_level(line), service, trace_id, line, metadata=meta)


def _labelled_level(labels: Mapping[str, str]) -> Level | None:
    return next(
        (lv for k in _LEVEL_LABELS if (lv := level_from_text(labels.get(k))) is not None), None
    )


def _trace_id(structured: Mapping[str, str] | None) -> str:
    if structured:
        for key in _TRACE_KEYS:
            value = structured.get(key)
            if is_hex_id(value, 32):
                return value.lower()
    return _new_trace_id()


def _line_level(line: str) -> Level:
    if line.startswith("{"):
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            for key in _LINE_LEVEL_KEYS:
                level = level_from_text(data.get(key))
                if level is not None:
                    return level
            return "info"
    match = _LOGFMT_LEVEL.search(line, 0, 200)
    return (level_from_text(match.group(1)) if match else None) or "info"


# -- JSON --------------------------------------------------------------------------------------
def _json_streams(body: bytes) -> Iterator[tuple[dict[str, str], Values]]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"the body is not valid JSON ({exc})") from None
    streams = data.get("streams") if isinstance(data, dict) else None
    if not isinstance(streams, list):
        raise IngestError(400, 'the body must be {"streams": [{"stream": {...}, "values": [...]}]}')
    for index, stream in enumerate(streams):
        if not isinstance(stream, dict):
            raise IngestError(400, f"stream {index} must be a JSON object")
        labels, values = stream.get("stream"), stream.get("values")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise IngestError(400, f"stream {index}: 'stream' must map label names to strings")
        if not isinstance(values, list):
            raise IngestError(400, f"stream {index}: 'values' must be a list of [ts, line]")
        yield {clean(k): clean(v) for k, v in labels.items()}, _json_values(index, values)


def _json_values(index: int, values: list[Any]) -> Values:
    for position, value in enumerate(values):
        if not isinstance(value, list) or not 2 <= len(value) <= 3 or not isinstance(value[1], str):
            raise IngestError(
                400,
                f'stream {index} value {position} must be ["<unix ns>", "<line>"] '
                "with optional structured metadata",
            )
        ts = _nanoseconds(value[0], index, position)
        structured = _structured(value[2], index, position) if len(value) == 3 else None
        yield ts, clean(value[1]), structured


def _nanoseconds(raw: Any, index: int, position: int) -> float:
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw) / 1e9
    raise IngestError(
        400,
        f"stream {index} value {position} has timestamp {str(raw)[:40]!r}; it must be a string "
        "of Unix epoch nanoseconds",
    )


def _structured(raw: Any, index: int, position: int) -> dict[str, str] | None:
    if not isinstance(raw, dict):
        raise IngestError(
            400, f"stream {index} value {position}: structured metadata must be a JSON object"
        )
    return {clean(str(k)): clean(str(v)) for k, v in raw.items()} or None


# -- protobuf ----------------------------------------------------------------------------------
def _proto_streams(body: bytes) -> Iterator[tuple[dict[str, str], Values]]:
    try:
        # The block header states the decompressed size: check it before allocating that much.
        if cramjam.snappy.decompress_raw_len(body) > LOKI.decompressed:
            raise too_large("the decompressed body", LOKI.decompressed)
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise IngestError(400, f"the protobuf body is not snappy-compressed ({exc})") from None
    request = PushRequest()
    try:
        request.ParseFromString(raw)
    except DecodeError as exc:
        raise IngestError(400, f"the body is not a valid Loki PushRequest ({exc})") from None
    for index, stream in enumerate(request.streams):
        yield parse_selector(stream.labels, index), _proto_values(stream.entries)


def _proto_values(entries: Any) -> Values:
    for entry in entries:
        structured = {clean(p.name): clean(p.value) for p in entry.structuredMetadata}
        ts = entry.timestamp.seconds + entry.timestamp.nanos / 1e9
        yield ts, clean(entry.line), structured or None


def parse_selector(text: str, index: int) -> dict[str, str]:
    """``{job="api", level="info"}`` as a dict; IngestError on bad syntax or a repeated name."""
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise IngestError(400, f'stream {index} labels must look like {{name="value", ...}}')
    inner, labels, pos = inner[1:-1], {}, 0
    while pos < len(inner) and inner[pos:].strip():
        match = _SELECTOR_PAIR.match(inner, pos)
        if match is None:
            raise IngestError(
                400, f"stream {index} labels cannot be parsed at {inner[pos:][:40]!r}"
            )
        name, raw = match.group(1), match.group(2)
        if name in labels:
            raise IngestError(400, f"stream {index} repeats the label {name!r}")
        labels[name] = clean(_unescape(raw))
        pos = match.end()
    return labels


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    try:
        value = orjson.loads(f'"{raw}"')
    except orjson.JSONDecodeError:
        return raw
    return value if isinstance(value, str) else raw
