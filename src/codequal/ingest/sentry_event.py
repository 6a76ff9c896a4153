"""Sentry event payloads as our records: an error event becomes an :class:`ErrorEvent` (scrubbed and
fingerprinted exactly as an in-process capture is), a transaction becomes :class:`SpanRecord` s.

Field meanings follow Sentry's event payload documentation (``exception.values`` oldest first,
the last one raised; frames outermost first; ``contexts.trace`` carries the trace).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from codequal.ingest import (
    SERVICE_WIDTH,
    clean,
    is_hex_id,
    json_safe,
    level_from_text,
)
from codequal.ingest.limits import SENTRY_SPANS_PER_CONTAINER
from codequal.telemetry.errors import MAX_STACK, ErrorEvent, fingerprint, scrub, scrub_text
from codequal.telemetry.fingerprint import MAX_FRAMES, MAX_MESSAGE
from codequal.telemetry.stores.spans import SpanRecord
from codequal.vocabulary import Level

JSON = dict[str, Any]
_BUILTIN_MODULES = frozenset({"builtins", "__builtin__", "exceptions"})
MAX_BREADCRUMBS = 100  # sentry-sdk's default max_breadcrumbs
_CONTEXT_KEYS = ("tags", "extra", "contexts", "user", "request")
_SENTRY_KEYS = ("platform", "logger", "server_name", "transaction", "dist")


def _mapping(value: Any) -> Mapping[str, Any]:
    # Payloads come from orjson: dict, never another Mapping (and the ABC check is slow).
    return value if isinstance(value, dict) else {}


def _text(value: Any, width: int | None = None) -> str | None:
    if type(value) is str:  # nearly always: the exact test first
        text = clean(value)
    elif value is None or isinstance(value, dict | list):
        return None
    else:
        text = clean(str(value))
    return text[:width] if width is not None else text


def timestamp(value: Any, default: float) -> float:
    """Sentry timestamps: epoch seconds (a number) or RFC 3339 text; ``default`` otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return default
        seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    else:
        return default
    # A year-9999 timestamp is still a float; an infinite or negative one is not a time.
    return seconds if 0 <= seconds < 1e11 else default


def tags(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Tags as a mapping: Sentry accepts both an object and a list of ``[key, value]`` pairs."""
    raw = payload.get("tags")
    if isinstance(raw, dict):
        return dict(raw)
    if isinstance(raw, list):
        return {str(p[0]): p[1] for p in raw if isinstance(p, list | tuple) and len(p) == 2}
    return {}


def service_name(payload: Mapping[str, Any], project_id: int) -> str:
    found = tags(payload).get("service") or tags(payload).get("service.name")
    return (_text(found) or f"sentry-project-{project_id}")[:SERVICE_WIDTH]


def event_id_of(*candidates: Any) -> str:
    """The first candidate that is a UUID (with or without dashes), as 32 hex digits."""
    for value in candidates:
        if isinstance(value, str):
            normalised = value.replace("-", "").lower()
            if is_hex_id(normalised, 32):
                return normalised
    return uuid.uuid4().hex


# -- error events ----------------------------------------------------------------------------
def error_event(
    payload: Mapping[str, Any], *, project_id: int, now: float, event_id: str | None = None
) -> ErrorEvent:
    """An error (or message) event as our scrubbed, fingerprinted :class:`ErrorEvent`."""
    values = _exception_values(payload)
    chain = _scrubbed_chain(values)
    if chain:
        type_name, message, frames = chain[-1]
    else:
        type_name, frames = "message", []
        message = clean(scrub_text(_message(payload)[:MAX_MESSAGE]))
    explicit = payload.get("fingerprint")
    explicit = [str(p) for p in explicit] if isinstance(explicit, list) and explicit else None
    trace_id = _mapping(_mapping(payload.get("contexts")).get("trace")).get("trace_id")
    return ErrorEvent(
        event_id=event_id_of(payload.get("event_id"), event_id),
        timestamp=timestamp(payload.get("timestamp"), now),
        level=_level(payload.get("level"), values),
        type=type_name,
        message=message,
        stack=_stack(chain)[-MAX_STACK:],
        frames=tuple(frames),
        fingerprint=fingerprint(type_name, frames, message, explicit=explicit),
        service=service_name(payload, project_id),
        environment=_text(payload.get("environment"), 200) or "production",
        release=_text(payload.get("release"), 200),
        trace_id=trace_id.lower() if is_hex_id(trace_id, 32) else None,
        user_id=_user_id(payload),
        context=scrub(json_safe(_context(payload, project_id))),
    )


Link = tuple[str, str, list[JSON]]  # type name, scrubbed message, frames with scrubbed lines


def _scrubbed_chain(values: Sequence[Mapping[str, Any]]) -> list[Link]:
    """Each exception of the chain, its message and source lines scrubbed.

    scrub_text costs about as much for a short line as for a page (it is a fixed set of
    regexes), so every source line of the chain is scrubbed in one call: joined, scrubbed and
    split again. A match across lines (a private key) changes the line count; then each line
    is scrubbed on its own.
    """
    raw = [_frames(v) for v in values]
    lines = [f["context_line"] for frames in raw for f in frames]
    scrubbed = scrub_text("\n".join(lines)).split("\n")
    if len(scrubbed) != len(lines):
        scrubbed = [scrub_text(line) for line in lines]
    clean_lines = iter(scrubbed)
    chain: list[Link] = []
    for value, frames in zip(values, raw, strict=True):
        message = clean(scrub_text((_text(value.get("value")) or "")[:MAX_MESSAGE]))
        with_lines = [{**f, "context_line": next(clean_lines)} for f in frames]
        chain.append((_type_name(value), message, with_lines))
    return chain


def _exception_values(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = payload.get("exception")
    values = raw.get("values") if isinstance(raw, dict) else raw  # a bare list is legacy
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, dict)]


def _type_name(exc: Mapping[str, Any]) -> str:
    name = _text(exc.get("type")) or "Error"
    module = _text(exc.get("module"))
    # The in-process tracker names non-builtin types module.Qualname: the same error sent
    # through sentry-sdk then groups with one captured here.
    if module and module not in _BUILTIN_MODULES and "." not in name:
        name = f"{module}.{name}"
    return name[:200]


def _frames(exc: Mapping[str, Any]) -> list[JSON]:
    raw = _mapping(exc.get("stacktrace")).get("frames")
    if not isinstance(raw, list):
        return []
    frames = [f for f in raw if isinstance(f, dict)][-MAX_FRAMES:]
    return [_frame(f) for f in frames]


def _frame(f: Mapping[str, Any]) -> JSON:
    lineno = f.get("lineno")
    short = _text(f.get("filename"))
    filename = _text(f.get("abs_path")) or short or ""
    return {
        "module": _text(f.get("module")) or short or "",
        "function": _text(f.get("function")) or "?",
        "filename": filename,
        "lineno": lineno if isinstance(lineno, int) and not isinstance(lineno, bool) else None,
        "context_line": (_text(f.get("context_line")) or "").strip(),  # scrubbed by the caller
        "in_app": f.get("in_app") is True,
    }


def _message(payload: Mapping[str, Any]) -> str:
    for source in (payload.get("logentry"), payload.get("message")):
        if isinstance(source, str) and source:
            return source
        if isinstance(source, dict):
            text = source.get("formatted") or source.get("message")
            if isinstance(text, str) and text:
                return text
    return "(no message)"


def _level(value: Any, values: Sequence[Mapping[str, Any]]) -> Level:
    level = level_from_text(value)
    if level is not None:
        return level
    return "error" if values else "info"


def _stack(chain: Sequence[Link]) -> str:
    """A Python-style traceback text for each exception of the chain, oldest first.

    Built from parts already scrubbed (source lines, messages); file and function names are
    kept as they are, as in the frames.
    """
    blocks = []
    for type_name, message, frames in chain:
        lines = ["Traceback (most recent call last):"]
        for f in frames:
            lines.append(f'  File "{f["filename"]}", line {f["lineno"]}, in {f["function"]}')
            if f["context_line"]:
                lines.append(f"    {f['context_line']}")
        lines.append(f"{type_name}: {message}" if message else type_name)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _user_id(payload: Mapping[str, Any]) -> str | None:
    user = _mapping(payload.get("user"))
    found = _text(user.get("id")) or _text(user.get("username"))
    return scrub_text(found)[:200] if found else None


def _context(payload: Mapping[str, Any], project_id: int) -> JSON:
    context: JSON = {k: payload[k] for k in _CONTEXT_KEYS if payload.get(k)}
    if "tags" in context:
        context["tags"] = tags(payload)
    crumbs = _mapping(payload.get("breadcrumbs")).get("values")
    if isinstance(crumbs, list) and crumbs:
        context["breadcrumbs"] = crumbs[-MAX_BREADCRUMBS:]
    sentry: JSON = {k: payload[k] for k in _SENTRY_KEYS if payload.get(k)}
    sentry["project_id"] = project_id
    sdk = _mapping(payload.get("sdk"))
    if sdk:
        sentry["sdk"] = {"name": sdk.get("name"), "version": sdk.get("version")}
    context["sentry"] = sentry
    return context


# -- transactions ----------------------------------------------------------------------------
_STATUS_OK = "ok"


def transaction_spans(
    payload: Mapping[str, Any], *, project_id: int, now: float
) -> tuple[list[SpanRecord], int]:
    """The transaction's root span and its child spans; and how many were invalid (no ids)."""
    trace = _mapping(_mapping(payload.get("contexts")).get("trace"))
    trace_id = trace.get("trace_id")
    children = [s for s in payload.get("spans") or () if isinstance(s, dict)]
    if not is_hex_id(trace_id, 32):
        return [], 1 + len(children)
    service = service_name(payload, project_id)
    root = {**trace, "description": payload.get("transaction")}
    root["start_timestamp"] = payload.get("start_timestamp")
    root["timestamp"] = payload.get("timestamp")
    extra = {"sentry.tags": tags(payload)} if payload.get("tags") else {}
    spans, rejected = [], 0
    for raw in (root, *children):
        span = _span(raw, trace_id.lower(), service, now, extra if raw is root else {})
        if span is None:
            rejected += 1
        else:
            spans.append(span)
    return spans, rejected


def _span(
    raw: Mapping[str, Any], trace_id: str, service: str, now: float, extra: JSON
) -> SpanRecord | None:
    span_id, parent = raw.get("span_id"), raw.get("parent_span_id")
    if not is_hex_id(span_id, 16) or (parent is not None and not is_hex_id(parent, 16)):
        return None
    start = timestamp(raw.get("start_timestamp"), now)
    end = max(start, timestamp(raw.get("timestamp"), start))
    op = _text(raw.get("op")) or ""
    status = _text(raw.get("status"))
    attributes: JSON = {"sentry.op": op} if op else {}
    attributes.update(_mapping(raw.get("data")))
    attributes.update(extra)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id.lower(),
        parent_span_id=parent.lower() if parent else None,
        name=(_text(raw.get("description")) or op or "span")[:500],
        kind=_kind(op),
        service=service,
        start_ts=start,
        end_ts=end,
        duration=end - start,
        status="UNSET" if not status else "OK" if status == _STATUS_OK else "ERROR",
        status_message=status if status and status != _STATUS_OK else None,
        attributes=json_safe(attributes),
    )


# -- streamed spans (sentry-sdk 3) -------------------------------------------------------------
def span_items(
    payload: Mapping[str, Any], *, project_id: int, now: float
) -> tuple[list[SpanRecord], int]:
    """The spans of a ``span`` item, and how many were invalid.

    sentry-sdk 3 sends a container, ``{"version": 2, "items": [span, ...]}``, whose spans carry
    typed attributes (``{"value": ..., "type": ...}``) and a ``status`` of ok or error; a
    container holds at most SENTRY_SPANS_PER_CONTAINER spans. Without ``items`` the payload is one
    span in the transaction span shape, with its own ``trace_id``.
    """
    raw_items = payload.get("items")
    if raw_items is None:
        trace_id = payload.get("trace_id")
        if not is_hex_id(trace_id, 32):
            return [], 1
        service = service_name(payload, project_id)
        span = _span(payload, trace_id.lower(), service, now, {})
        return ([span], 0) if span else ([], 1)
    if not isinstance(raw_items, list):
        return [], 1
    items = raw_items[:SENTRY_SPANS_PER_CONTAINER]
    rejected = len(raw_items) - len(items)
    spans = []
    for raw in items:
        span = _v2_span(raw, project_id, now) if isinstance(raw, dict) else None
        if span is None:
            rejected += 1
        else:
            spans.append(span)
    return spans, rejected


def _v2_span(raw: Mapping[str, Any], project_id: int, now: float) -> SpanRecord | None:
    trace_id = raw.get("trace_id")
    if not is_hex_id(trace_id, 32):
        return None
    attributes = {
        str(k): v.get("value") if isinstance(v, dict) else v
        for k, v in _mapping(raw.get("attributes")).items()
    }
    service = _text(attributes.get("service.name")) or f"sentry-project-{project_id}"
    shaped = {
        "span_id": raw.get("span_id"),
        "parent_span_id": raw.get("parent_span_id"),
        "description": raw.get("name"),
        "op": attributes.pop("sentry.op", None),
        "status": raw.get("status"),
        "start_timestamp": raw.get("start_timestamp"),
        "timestamp": raw.get("end_timestamp"),
        "data": scrub(attributes),  # a segment span carries sys.argv, which may hold a DSN
    }
    return _span(shaped, trace_id.lower(), service[:SERVICE_WIDTH], now, {})


def _kind(op: str) -> str:
    if op.startswith("http.server"):
        return "SERVER"
    if op.startswith(("http.client", "db", "cache", "rpc")):
        return "CLIENT"
    return "INTERNAL"
