"""Structured logging: the LogEntry schema, a structlog front end, fan-out to sinks.

The calling thread only builds a :class:`LogEntry` and appends it to one bounded queue per
sink; rendering and I/O happen on each sink's background thread. Everything that can be
decided once (level filter, sinks, bound metric children) is decided in :func:`build_logger`.

Usage::

    log = telemetry.logger(service="orchestrator")
    log.info("analysis started", repository_url=url, mode="quick")
    log.error("agent failed", error=exc, duration=1.2)
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from random import getrandbits
from typing import Any, Protocol

import structlog

from codequal.telemetry import context
from codequal.telemetry._worker import BatchWorker
from codequal.telemetry.context import current_trace_id
from codequal.telemetry.metrics import LOG_ENTRIES, LOG_ENTRIES_DROPPED, SINK_ERRORS
from codequal.vocabulary import LEVELS, Level, iso_timestamp

LEVEL_NUMBERS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# structlog's method names to our level names.
_METHOD_LEVELS: dict[str, Level] = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warn",
    "warn": "warn",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    type: str
    message: str
    stack: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(type(exc).__name__, str(exc), stack)

    def to_dict(self) -> dict[str, str]:
        out = {"type": self.type, "message": self.message}
        if self.stack is not None:
            out["stack"] = self.stack
        return out


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log line, exactly the fields of the LogEntry schema (ARCHITECTURE.md)."""

    timestamp: float  # UTC epoch seconds; rendered as ISO 8601 by to_dict()
    level: Level
    service: str
    trace_id: str
    action: str
    user_id: str | None = None
    repository_url: str | None = None
    duration: float | None = None  # seconds
    error: ErrorInfo | None = None
    metadata: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, optional fields omitted when absent."""
        out: dict[str, Any] = {
            "timestamp": iso_timestamp(self.timestamp),
            "level": self.level,
            "service": self.service,
            "traceId": self.trace_id,
            "action": self.action,
        }
        if self.user_id is not None:
            out["userId"] = self.user_id
        if self.repository_url is not None:
            out["repositoryUrl"] = self.repository_url
        if self.duration is not None:
            out["duration"] = self.duration
        if self.error is not None:
            out["error"] = self.error.to_dict()
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


class Sink(Protocol):
    """A destination for log entries. ``write`` runs on the sink's own background thread."""

    name: str

    def write(self, entries: Sequence[LogEntry]) -> None: ...

    def close(self) -> None: ...


class AlertHook:
    """Subscribers called (on a background thread) for every ``critical`` entry.

    The alerting part subscribes here; until it does, the store records each one as an
    alert event.
    """

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Sequence[LogEntry]], None]] = []

    def subscribe(self, fn: Callable[[Sequence[LogEntry]], None]) -> None:
        self._subscribers.append(fn)

    def __call__(self, entries: Sequence[LogEntry]) -> None:
        for fn in list(self._subscribers):
            try:
                fn(entries)
            except Exception:  # noqa: BLE001 - one bad subscriber must not starve the others
                SINK_ERRORS.labels(sink="alert-hook").inc()


class LogPipeline:
    """Fans each entry out to one :class:`BatchWorker` per sink, plus the critical hook."""

    def __init__(
        self,
        sinks: Iterable[Sink],
        *,
        alert_hook: AlertHook | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.25,
    ) -> None:
        self.sinks = list(sinks)
        self.alert_hook = alert_hook or AlertHook()
        self._workers = [
            BatchWorker(
                f"log-{sink.name}",
                sink.write,
                max_queue=max_queue,
                batch_size=batch_size,
                flush_interval=flush_interval,
                on_drop=LOG_ENTRIES_DROPPED.labels(sink=sink.name).inc,
                on_error=_count_error(sink.name),
            )
            for sink in self.sinks
        ]
        self._hook_worker = BatchWorker(
            "log-alert-hook", self.alert_hook, max_queue=max_queue, flush_interval=flush_interval
        )
        self._counters = {level: LOG_ENTRIES.labels(level=level) for level in LEVELS}
        self._submits = [w.submit for w in self._workers]

    def start(self) -> None:
        for worker in (*self._workers, self._hook_worker):
            worker.start()

    def emit(self, entry: LogEntry) -> None:
        """Queue ``entry`` for every sink. Never blocks, never raises."""
        self._counters[entry.level].inc()
        for submit in self._submits:
            submit(entry)
        if entry.level == "critical":
            self._hook_worker.submit(entry)

    def queue_depths(self) -> dict[str, int]:
        return {w.name: w.depth() for w in self._workers}

    def flush(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        ok = True
        for worker in (*self._workers, self._hook_worker):
            ok = worker.flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def close(self, timeout: float = 5.0) -> bool:
        """Flush with a deadline shared by all sinks, then close them."""
        deadline = time.monotonic() + timeout
        ok = True
        for worker in (*self._workers, self._hook_worker):
            ok = worker.stop(max(0.0, deadline - time.monotonic())) and ok
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - closing must go on for the other sinks
                SINK_ERRORS.labels(sink=sink.name).inc()
        return ok


def _count_error(sink: str) -> Callable[[BaseException], None]:
    counter = SINK_ERRORS.labels(sink=sink)
    return lambda _exc: counter.inc()


# -- the structlog front end ------------------------------------------------------------------


def _new_trace_id() -> str:
    # A line outside any trace is a trace of its own; its id need not be unguessable.
    return f"{getrandbits(128):032x}"


def _error_info(value: Any) -> ErrorInfo | None:
    if value is None or value is False:
        return None
    if isinstance(value, ErrorInfo):
        return value
    if isinstance(value, BaseException):
        return ErrorInfo.from_exception(value)
    if value is True:
        exc = sys.exc_info()[1]
        return ErrorInfo.from_exception(exc) if exc is not None else None
    if isinstance(value, Mapping):
        return ErrorInfo(str(value.get("type", "Error")), str(value.get("message", "")))
    return ErrorInfo("Error", str(value))


def to_entry(default_service: str) -> structlog.typing.Processor:
    """The structlog processor that turns an event dict into a :class:`LogEntry`.

    structlog hands each call a fresh dict, so popping the schema's own keys is safe and
    leaves exactly the metadata behind.
    """
    levels = _METHOD_LEVELS
    known = context.KNOWN_KEYS

    def processor(
        _logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> tuple[tuple[LogEntry], dict[str, Any]]:
        bound = context.current()
        pop = event.pop
        trace_id = pop("trace_id", None) or current_trace_id() or bound.get("trace_id")
        action = pop("event", "")
        service = pop("service", None) or default_service
        user_id = pop("user_id", None) or bound.get("user_id")
        repository_url = pop("repository_url", None) or bound.get("repository_url")
        duration = pop("duration", None)
        error = pop("error", None)
        exc_info = pop("exc_info", None)
        if bound:
            for key, value in bound.items():
                if key not in known:
                    event.setdefault(key, value)
            if "analysis_id" in bound:
                event.setdefault("analysisId", bound["analysis_id"])
        entry = LogEntry(
            time.time(),
            levels.get(method, "info"),
            service,
            trace_id or _new_trace_id(),
            action if isinstance(action, str) else str(action),
            user_id,
            repository_url,
            duration,
            _error_info(error if error is not None else exc_info),
            event or None,
        )
        return (entry,), {}

    return processor


class PipelineLogger:
    """The structlog "logger": hands the finished entry to the pipeline."""

    def __init__(self, pipeline: LogPipeline) -> None:
        self._emit = pipeline.emit

    def msg(self, entry: LogEntry) -> None:
        self._emit(entry)

    debug = info = warning = warn = error = critical = exception = fatal = msg


def build_logger(
    pipeline: LogPipeline, *, level: str, service: str, **initial: Any
) -> structlog.typing.FilteringBoundLogger:
    """A logger writing into ``pipeline``, filtering below ``level`` at no cost per call."""
    logger: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        PipelineLogger(pipeline),
        processors=[to_entry(service)],
        wrapper_class=structlog.make_filtering_bound_logger(LEVEL_NUMBERS[level]),
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    return logger.bind(**initial) if initial else logger


# Libraries whose INFO lines are one per HTTP request (see install_stdlib_bridge).
CHATTY_CLIENT_LIBRARIES = ("httpx", "httpcore", "urllib3", "hpack")


class StdlibBridge(logging.Handler):
    """Routes stdlib ``logging`` records (uvicorn, libraries) into the same pipeline."""

    def __init__(self, logger: structlog.typing.FilteringBoundLogger, level: str) -> None:
        super().__init__(LEVEL_NUMBERS[level])
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            method = _stdlib_method(record.levelno)
            # The library's top-level package is the service: "uvicorn", "sqlalchemy", ...
            fields: dict[str, Any] = {"logger": record.name, "service": record.name.split(".")[0]}
            if record.exc_info and record.exc_info[1] is not None:
                fields["error"] = record.exc_info[1]
            getattr(self._logger, method)(record.getMessage(), **fields)
        except Exception:  # noqa: BLE001 - logging.Handler's contract: never raise
            self.handleError(record)


def _stdlib_method(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def install_stdlib_bridge(bridge: StdlibBridge) -> None:
    """Make the bridge the root handler; library loggers propagate to it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StdlibBridge):
            root.removeHandler(handler)
    root.addHandler(bridge)
    root.setLevel(bridge.level)
    for name in ("uvicorn", "uvicorn.error"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    # Requests are logged by our middleware with their trace id; uvicorn's copy is noise.
    logging.getLogger("uvicorn.access").disabled = True
    # HTTP clients log a line per request at INFO. Our own sinks push with them, so each push
    # logged a line that the next push exported: telemetry feeding itself, four pushes a second
    # per sink on an idle server. Their warnings and errors still come through.
    for name in CHATTY_CLIENT_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, bridge.level))


def uninstall_stdlib_bridge() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StdlibBridge):
            root.removeHandler(handler)
