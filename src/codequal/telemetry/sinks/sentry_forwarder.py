"""Forwarding captured errors to a real Sentry (or any server speaking its protocol).

sentry-sdk builds, scrubs and serialises the events; delivery is CodeQual's: the client's
transport is :class:`~codequal.telemetry.sinks.sentry.SpoolTransport`, so envelopes go to an
on-disk spool under the data dir and reach Sentry, in order, whenever it is reachable.

The forwarder owns its own ``sentry_sdk.Client`` instead of calling ``sentry_sdk.init``: the
process-wide SDK state stays untouched, so an application embedding CodeQual can keep its own
Sentry set-up, and two trackers (or two tests) do not fight over one global client.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sentry_sdk
import sentry_sdk.consts
import sentry_sdk.utils

from codequal.retry import Backoff
from codequal.telemetry._worker import BatchWorker
from codequal.telemetry.events import ErrorEvent
from codequal.telemetry.metrics import SINK_ERRORS, SINK_QUEUE_DROPPED
from codequal.telemetry.scrub import scrub
from codequal.telemetry.sinks.sentry import SINK_NAME, SentrySink, SpoolTransport

_LEVELS = {"warn": "warning", "critical": "fatal"}  # ours -> Sentry's

# sentry-sdk 2.x and 3.x differ in two places we touch, decided once here:
# - 3.0 removed ``include_local_variables`` for ``data_collection`` (added in 2.65); both say
#   "no frame locals" to the SDK, and ``_without_vars`` removes any that still appear.
# - 2.x's ``event_from_exception`` takes the client's options; 3.x reads the current client.
_OPTIONS = sentry_sdk.consts.DEFAULT_OPTIONS
_NO_LOCALS: dict[str, Any] = {}
if "include_local_variables" in _OPTIONS:
    _NO_LOCALS["include_local_variables"] = False
if "data_collection" in _OPTIONS:
    _NO_LOCALS["data_collection"] = {"stack_frame_variables": False}
_event_from_exception: Any = sentry_sdk.utils.event_from_exception  # two signatures
_TAKES_OPTIONS = "client_options" in inspect.signature(_event_from_exception).parameters


def _before_send(event: Any, _hint: Any) -> Any:
    """The last step before the SDK serialises: scrub the event Sentry built itself."""
    return scrub(event)


class SentryForwarder:
    """Builds Sentry events on a worker thread and spools them; the sink's thread sends them.

    ``data_dir`` holds the spool (``spool/sentry.*``); without one, a temporary directory is
    used and events still waiting at shutdown are lost with it.
    """

    def __init__(
        self,
        dsn: str,
        *,
        environment: str,
        release: str | None,
        in_app_include: Sequence[str],
        max_queue: int,
        data_dir: Path | str | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        spool_dir = data_dir if data_dir is not None else tempfile.mkdtemp(prefix="codequal-")
        self._tmp = spool_dir if data_dir is None else None  # removed at close
        try:  # the DSN is parsed before the sink opens its spool or starts its thread
            self.sink = SentrySink(dsn, spool_dir, backoff=backoff)
        except ValueError as exc:  # the SDK raises BadDsn, a ValueError
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
            raise _bad_dsn(exc) from None
        self.client = sentry_sdk.Client(
            dsn=dsn,
            transport=SpoolTransport(self.sink),
            environment=environment,
            release=release,
            before_send=_before_send,
            default_integrations=False,
            auto_enabling_integrations=False,
            in_app_include=list(in_app_include),
            # Locals can hold a secret under any name; scrubbing by key would miss it.
            **_NO_LOCALS,
        )
        self.worker: BatchWorker[tuple[ErrorEvent, BaseException | None]] = BatchWorker(
            SINK_NAME,
            self._send,
            max_queue=max_queue,
            batch_size=100,
            on_drop=SINK_QUEUE_DROPPED.labels(sink=SINK_NAME).inc,
            on_error=lambda _exc: SINK_ERRORS.labels(sink=SINK_NAME).inc(),
        )
        self.worker.start()

    def submit(self, event: ErrorEvent, exc: BaseException | None) -> None:
        """Queue one event (never blocks; the oldest is dropped when the queue is full)."""
        self.worker.submit((event, exc))

    def flush(self, timeout: float) -> bool:
        """Wait until every submitted event reached Sentry (or was rejected); False on timeout."""
        deadline = time.monotonic() + timeout
        done = self.worker.flush(timeout)
        return self.sink.wait_delivered(max(0.0, deadline - time.monotonic())) and done

    def close(self, timeout: float) -> bool:
        """Spool what is queued, send what can be within ``timeout``; the rest stays spooled."""
        deadline = time.monotonic() + timeout
        done = self.worker.stop(timeout)
        self.client.close(timeout=0.0)  # its transport only spools: nothing to wait for
        done = self.sink.shutdown(max(0.0, deadline - time.monotonic())) and done
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        return done

    def _send(self, batch: Sequence[tuple[ErrorEvent, BaseException | None]]) -> None:
        for event, exc in batch:
            payload: Any  # the SDK's Event TypedDict, built from plain dicts
            if exc is not None:
                payload, hint = self._event_from_exception(exc)
            else:
                payload, hint = {"message": event.message}, {}
            payload["event_id"] = event.event_id  # one id in our store and in Sentry
            payload["timestamp"] = datetime.fromtimestamp(event.timestamp, UTC)
            self.client.capture_event(payload, hint=hint, scope=_scope(event))

    def _event_from_exception(self, exc: BaseException) -> tuple[dict[str, Any], dict[str, Any]]:
        """The SDK's own exception event, built with this forwarder's client and options."""
        with sentry_sdk.isolation_scope() as isolation:
            isolation.set_client(self.client)  # what 3.x (and 2.x's frame reader) consults
            extra = {"client_options": self.client.options} if _TAKES_OPTIONS else {}
            payload, hint = _event_from_exception(exc, **extra)
        _without_vars(payload)
        return payload, hint


def _without_vars(payload: dict[str, Any]) -> None:
    """Drop frame locals, whatever the SDK version decided to collect."""
    for value in payload.get("exception", {}).get("values", []):
        for frame in (value.get("stacktrace") or {}).get("frames", []):
            frame.pop("vars", None)


def _bad_dsn(exc: ValueError) -> ValueError:
    return ValueError(
        "sentry_dsn is not a valid Sentry DSN "
        f"(expected https://<public key>@<host>/<project id>): {exc}"
    )


def _scope(event: ErrorEvent) -> sentry_sdk.Scope:
    scope = sentry_sdk.Scope()
    scope.set_level(_LEVELS.get(event.level, event.level))  # type: ignore[arg-type]
    # Our fingerprint (explicit or default) so Sentry groups exactly as the built-in store does.
    scope.fingerprint = [event.fingerprint]
    scope.set_tag("service", event.service)
    if event.user_id:
        scope.set_user({"id": event.user_id})
    known = {
        "trace_id": event.trace_id,
        "repository_url": event.repository_url,
        "analysis_id": event.analysis_id,
    }
    scope.set_context("codequal", {**event.context, **{k: v for k, v in known.items() if v}})
    return scope
