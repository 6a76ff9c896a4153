"""Error tracking: capture, enrich, scrub, fingerprint; optional forwarding to Sentry.

The core is pure: :func:`build_event` (here), :func:`scrub` (``scrub.py``) and
:func:`fingerprint` / :func:`parameterise` (``fingerprint.py``, re-exported here) do no I/O and
take ``now`` as an argument. :class:`ErrorTracker` is the thin shell: it counts the error, tells
the logger, and hands the event to background workers (store, Sentry), so a capture never blocks
and never raises.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from opentelemetry import trace

from codequal.telemetry import context as _context
from codequal.telemetry._worker import BatchWorker
from codequal.telemetry.events import MAX_STACK, ErrorEvent
from codequal.telemetry.fingerprint import (
    IN_APP_PACKAGES,
    MAX_MESSAGE,
    extract_frames,
    fingerprint,
    is_in_app,
    parameterise,
)
from codequal.telemetry.metrics import ERRORS, SINK_ERRORS
from codequal.telemetry.scrub import FILTERED, MAX_DEPTH, is_sensitive_key, scrub, scrub_text
from codequal.telemetry.sinks.sentry_forwarder import SentryForwarder
from codequal.vocabulary import LEVELS

__all__ = [
    "FILTERED",
    "LEVELS",
    "MAX_STACK",
    "ErrorEvent",
    "ErrorRecorder",
    "ErrorTracker",
    "build_event",
    "build_message_event",
    "extract_frames",
    "fingerprint",
    "is_in_app",
    "is_sensitive_key",
    "parameterise",
    "scrub",
    "scrub_text",
]

_ALIASES = {
    "traceId": "trace_id",
    "userId": "user_id",
    "repositoryUrl": "repository_url",
    "analysisId": "analysis_id",
}


def build_event(
    exc: BaseException,
    context: Mapping[str, Any] | None = None,
    *,
    service: str,
    environment: str,
    release: str | None = None,
    fingerprint: Sequence[str] | None = None,
    now: float | None = None,
    level: str = "error",
) -> ErrorEvent:
    """Enrich, fingerprint and scrub ``exc`` into an event (nothing secret leaves this function)."""
    cls = type(exc)
    type_name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    return _assemble(
        type_name=type_name,
        message=_safe_str(exc),
        stack="".join(traceback.format_exception(exc)),
        frames=extract_frames(exc.__traceback__),
        context=context,
        base={"service": service, "environment": environment, "release": release, "level": level},
        explicit=fingerprint,
        now=now,
    )


def build_message_event(
    message: str, context: Mapping[str, Any] | None = None, **options: Any
) -> ErrorEvent:
    """Like :func:`build_event` (the same keyword options; ``level`` defaults to info) for a
    message with no exception (type ``message``)."""
    origin = {k: options.pop(k, None) for k in ("release", "fingerprint", "now")}
    base = {"service": options.pop("service"), "environment": options.pop("environment")}
    base |= {"release": origin["release"], "level": options.pop("level", "info")}
    if options:
        raise TypeError(f"unknown options: {sorted(options)}")
    return _assemble(
        type_name="message",
        message=message,
        stack="",
        frames=[],
        context=context,
        base=base,
        explicit=origin["fingerprint"],
        now=origin["now"],
    )


def _assemble(
    *,
    type_name: str,
    message: str,
    stack: str,
    frames: list[dict[str, Any]],
    context: Mapping[str, Any] | None,
    base: dict[str, Any],
    explicit: Sequence[str] | None,
    now: float | None,
) -> ErrorEvent:
    if base["level"] not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}; got {base['level']!r}")
    extra = _merged_context(context)
    known: dict[str, Any] = {k: _optional_text(extra.pop(k, None)) for k in _context.KNOWN_KEYS}
    message = _clean(scrub_text(message[:MAX_MESSAGE]))
    return ErrorEvent(
        event_id=uuid.uuid4().hex,
        timestamp=time.time() if now is None else now,
        type=type_name,
        message=message,
        stack=_clean(scrub_text(stack[-MAX_STACK:])),
        frames=tuple(frames),
        fingerprint=fingerprint(type_name, frames, message, explicit=explicit),
        context=scrub(_jsonable(extra, 0)),
        **base,
        **known,
    )


def _merged_context(explicit: Mapping[str, Any] | None) -> dict[str, Any]:
    """Bound contextvars, then the active span's trace id, then the caller's fields (these win)."""
    merged = dict(_context.current())
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        merged["trace_id"] = format(span.trace_id, "032x")
    for key, value in (explicit or {}).items():
        if value is not None:
            merged[_ALIASES.get(str(key), str(key))] = value
    return merged


def _optional_text(value: Any) -> str | None:
    return None if value is None else _clean(scrub_text(str(value)))


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the error
        return f"<unprintable {type(exc).__name__}>"


def _clean(text: str) -> str:
    # PostgreSQL text and JSONB reject NUL characters; one would lose the whole batch.
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _jsonable(obj: Any, depth: int) -> Any:
    """Context values as JSON types: unknown objects become their (shortened) repr."""
    if obj is None or isinstance(obj, bool | int | float):
        return obj
    if isinstance(obj, str):
        return _clean(obj)
    if depth >= MAX_DEPTH:
        return "[Truncated]"
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in obj]
    return _clean(repr(obj)[:1000])


# -- the shell --------------------------------------------------------------------------------
class ErrorRecorder(Protocol):
    """Where events are kept: :class:`codequal.telemetry.stores.errors.ErrorStore` is one."""

    def record(self, events: Sequence[ErrorEvent]) -> None: ...


# Set while a capture runs, so an error raised by our own on_event hook cannot recurse.
_capturing: ContextVar[bool] = ContextVar("codequal_error_capturing", default=False)


class ErrorTracker:
    """Capture errors from any thread: count, notify, store and forward in the background."""

    def __init__(
        self,
        store: ErrorRecorder | None,
        *,
        service: str,
        environment: str,
        release: str | None = None,
        on_event: Callable[[ErrorEvent], None] | None = None,
        sentry_dsn: str | None = None,
        max_queue: int = 10_000,
        sentry: SentryForwarder | None = None,  # built by the caller (with a spool dir)
    ) -> None:
        self.service = service
        self.environment = environment
        self.release = release
        self._on_event = on_event
        self._store: BatchWorker[ErrorEvent] | None = None
        if store is not None:
            self._store = _worker("error_store", store.record, max_queue)
        self._sentry: SentryForwarder | None = sentry
        if sentry_dsn and sentry is None:
            self._sentry = SentryForwarder(
                sentry_dsn,
                environment=environment,
                release=release,
                in_app_include=IN_APP_PACKAGES,
                max_queue=max_queue,
            )
        self.internal_errors = 0  # captures that failed inside the tracker itself

    def capture_exception(
        self,
        exc: BaseException,
        context: Mapping[str, Any] | None = None,
        *,
        fingerprint: Sequence[str] | None = None,
        level: str = "error",
    ) -> str:
        """Record ``exc``; return the event id ("" if the tracker itself failed). Never raises."""
        return self._capture(
            exc, lambda: build_event(exc, context, **self._args(fingerprint, level))
        )

    def capture_message(
        self,
        message: str,
        context: Mapping[str, Any] | None = None,
        *,
        fingerprint: Sequence[str] | None = None,
        level: str = "info",
    ) -> str:
        """Record a message that has no exception; same guarantees as :meth:`capture_exception`."""
        return self._capture(
            None, lambda: build_message_event(message, context, **self._args(fingerprint, level))
        )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything captured so far is stored and sent; False on timeout."""
        deadline = time.monotonic() + timeout
        done = self._store.flush(timeout) if self._store is not None else True
        if self._sentry is not None:
            done = self._sentry.flush(max(0.0, deadline - time.monotonic())) and done
        return done

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush with a deadline, then stop the workers. False if events were left behind."""
        deadline = time.monotonic() + timeout
        done = self._store.stop(timeout) if self._store is not None else True
        if self._sentry is not None:
            done = self._sentry.close(max(0.0, deadline - time.monotonic())) and done
        return done

    @property
    def dropped(self) -> int:
        """Events dropped because a queue was full."""
        workers = [w for w in (self._store, self._sentry and self._sentry.worker) if w]
        return sum(w.dropped for w in workers)

    def _args(self, explicit: Sequence[str] | None, level: str) -> dict[str, Any]:
        return {
            "service": self.service,
            "environment": self.environment,
            "release": self.release,
            "fingerprint": explicit,
            "level": level if level in LEVELS else "error",
        }

    def _capture(self, exc: BaseException | None, build: Callable[[], ErrorEvent]) -> str:
        if _capturing.get():
            return ""
        token = _capturing.set(True)
        try:
            event = build()
            ERRORS.labels(service=event.service, error_type=event.type).inc()
            self._notify(event)
            if self._store is not None:
                self._store.submit(event)
            if self._sentry is not None:
                self._sentry.submit(event, exc)
            return event.event_id
        except Exception:  # noqa: BLE001 - telemetry never raises into the caller
            self.internal_errors += 1
            return ""
        finally:
            _capturing.reset(token)

    def _notify(self, event: ErrorEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # noqa: BLE001 - a failing hook must not lose the event
            self.internal_errors += 1


def _worker(
    name: str, handler: Callable[[Sequence[Any]], None], max_queue: int
) -> BatchWorker[Any]:
    worker: BatchWorker[Any] = BatchWorker(
        name,
        handler,
        max_queue=max_queue,
        batch_size=200,
        on_error=lambda _exc: SINK_ERRORS.labels(sink=name).inc(),
    )
    worker.start()
    return worker
