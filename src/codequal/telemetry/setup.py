"""Wiring: build and start every telemetry part from its configuration, once.

:func:`start_telemetry` wires the parts to the configured sinks and stores once, at start;
components then call ``telemetry.logger(...)``, ``telemetry.errors.capture_exception(...)``,
``telemetry.tracing.span(...)`` and ``telemetry.resources.track(...)``. No web framework is
imported here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import structlog

from codequal import __version__
from codequal.storage.db import Database
from codequal.telemetry.config import TelemetryConfig
from codequal.telemetry.errors import ErrorEvent, ErrorTracker
from codequal.telemetry.fingerprint import IN_APP_PACKAGES
from codequal.telemetry.logging import (
    LEVEL_NUMBERS,
    AlertHook,
    ErrorInfo,
    LogPipeline,
    PipelineLogger,
    Sink,
    StdlibBridge,
    build_logger,
    install_stdlib_bridge,
    to_entry,
    uninstall_stdlib_bridge,
)
from codequal.telemetry.metrics import configure_label_cap
from codequal.telemetry.resources import ResourceMonitor
from codequal.telemetry.sinks import SinkContext, build_sinks
from codequal.telemetry.sinks.sentry_forwarder import SentryForwarder
from codequal.telemetry.sinks.spool import DeliveringSink
from codequal.telemetry.stores.alerts import AlertEventStore
from codequal.telemetry.stores.errors import ErrorStore
from codequal.telemetry.stores.logs import LogStore
from codequal.telemetry.stores.spans import SpanStore
from codequal.telemetry.stores.work import WorkStore
from codequal.telemetry.tracing import Tracing, setup_tracing


@dataclass
class Telemetry:
    """The wired telemetry of one process (or one test)."""

    config: TelemetryConfig
    logs: LogPipeline
    errors: ErrorTracker
    tracing: Tracing
    resources: ResourceMonitor
    alert_hook: AlertHook
    log_store: LogStore | None
    error_store: ErrorStore | None
    span_store: SpanStore | None
    sentry: SentryForwarder | None = None
    _loggers: dict[str, Any] = field(default_factory=dict)

    def delivering_sinks(self) -> list[DeliveringSink]:
        """Every spooled destination (logs, spans, errors), each with its own ``health()``."""
        sinks = [s for s in self.logs.sinks if isinstance(s, DeliveringSink)]
        sinks.extend(self.tracing.sinks)
        if self.sentry is not None:
            sinks.append(self.sentry.sink)
        return sinks

    def logger(self, service: str | None = None, **initial: Any) -> Any:
        """A structlog logger for ``service`` (default: the configured service name)."""
        name = service or self.config.service_name
        if initial:
            return build_logger(self.logs, level=self.config.log_level, service=name, **initial)
        if name not in self._loggers:
            self._loggers[name] = build_logger(self.logs, level=self.config.log_level, service=name)
        return self._loggers[name]

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything emitted so far reached its sinks and stores."""
        deadline = time.monotonic() + timeout
        ok = self.errors.flush(timeout)
        ok = self.tracing.flush(max(0.0, deadline - time.monotonic())) and ok
        ok = self.resources.flush(max(0.0, deadline - time.monotonic())) and ok
        return self.logs.flush(max(0.0, deadline - time.monotonic())) and ok

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush everything within ``timeout`` (default: settings.shutdown_timeout), then stop.

        Errors and spans go first because they log; the log pipeline closes last.
        """
        budget = self.config.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        ok = self.errors.shutdown(left())
        ok = self.tracing.shutdown(left()) and ok
        ok = self.resources.shutdown(left()) and ok
        uninstall_stdlib_bridge()
        return self.logs.close(left()) and ok


def start_telemetry(
    config: TelemetryConfig,
    db: Database | None,
    *,
    console: BinaryIO | None = None,
    extra_sinks: Sequence[Sink] = (),
    bridge_stdlib: bool = True,
    set_global: bool = False,
) -> Telemetry:
    """Build and start the telemetry ``config`` describes; ``db`` None means no store sinks.

    The log sinks are the ones :data:`codequal.telemetry.sinks.SINKS` builds for ``config``,
    then ``extra_sinks``.
    """
    configure_label_cap(config.label_cap)
    sinks = build_sinks(SinkContext(config, db, console)) + list(extra_sinks)
    hook = AlertHook()
    if db is not None:
        hook.subscribe(AlertEventStore(db).record_log_entries)
    pipeline = LogPipeline(
        sinks,
        alert_hook=hook,
        max_queue=config.log_queue_size,
        batch_size=config.log_batch_size,
        flush_interval=config.log_flush_interval,
    )
    pipeline.start()
    base_logger = build_logger(pipeline, level=config.log_level, service=config.service_name)
    error_store = ErrorStore(db) if db is not None else None
    span_store = SpanStore(db) if db is not None else None
    sentry = None
    if config.sentry_dsn:  # spooled under the data dir, so a Sentry outage loses nothing
        sentry = SentryForwarder(
            config.sentry_dsn,
            environment=config.environment,
            release=config.release,
            in_app_include=IN_APP_PACKAGES,
            max_queue=config.log_queue_size,
            data_dir=config.data_dir,
        )
    tracker = ErrorTracker(
        error_store,
        service=config.service_name,
        environment=config.environment,
        release=config.release,
        on_event=_log_error_event(base_logger),
        sentry=sentry,
        max_queue=config.log_queue_size,
    )
    tracing = setup_tracing(
        service=config.service_name,
        version=__version__,
        environment=config.environment,
        span_store=span_store,
        otlp_endpoint=config.otlp_endpoint,
        data_dir=config.data_dir,
        set_global=set_global,
    )
    resources = ResourceMonitor(WorkStore(db) if db is not None else None)
    if bridge_stdlib:
        install_stdlib_bridge(StdlibBridge(base_logger, config.log_level))
    if set_global:
        _set_global(pipeline, config)
    log_store = LogStore(db) if db is not None else None
    return Telemetry(
        config,
        pipeline,
        tracker,
        tracing,
        resources,
        hook,
        log_store,
        error_store,
        span_store,
        sentry,
    )


def _log_error_event(logger: Any) -> Any:
    """Each captured error also becomes an ``error`` LogEntry carrying its issue fingerprint."""

    def on_event(event: ErrorEvent) -> None:
        logger.error(
            "exception captured",
            error=ErrorInfo(event.type, event.message, event.stack),
            trace_id=event.trace_id,
            user_id=event.user_id,
            repository_url=event.repository_url,
            fingerprint=event.fingerprint,
            eventId=event.event_id,
        )

    return on_event


def _set_global(pipeline: LogPipeline, config: TelemetryConfig) -> None:
    """Make ``structlog.get_logger()`` anywhere in the process write into this pipeline."""
    structlog.configure(
        processors=[to_entry(config.service_name)],
        logger_factory=lambda *_args: PipelineLogger(pipeline),
        wrapper_class=structlog.make_filtering_bound_logger(LEVEL_NUMBERS[config.log_level]),
        context_class=dict,
        cache_logger_on_first_use=False,
    )


def get_logger(**initial: Any) -> Any:
    """A logger for library code: writes into the process's telemetry once it is set up."""
    return structlog.get_logger(**initial)


__all__ = ["Telemetry", "TelemetryConfig", "get_logger", "start_telemetry"]
