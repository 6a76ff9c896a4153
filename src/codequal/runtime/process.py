"""One CodeQual process: its parts, built from the settings, and their start-up and shutdown.

``Runtime(settings)`` builds what needs no I/O (the database handle, alerting, Redis client),
so a bad setting stops ``codequal serve`` before it binds. :meth:`Runtime.start` then migrates
the database, starts telemetry, the analysis workers, the anomaly scanner and the leader
campaign, in that order; :meth:`Runtime.stop` stops them in reverse, each with a share of the
shutdown budget. The HTTP app (:mod:`codequal.api.app`) and the CLI take what they need from
here.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from codequal import __version__
from codequal.alerting.service import AlertingService
from codequal.analysis.collector import COLLECTOR
from codequal.analysis.service import AnalysisService
from codequal.analytics.anomaly_service import AnomalyService
from codequal.config import Settings
from codequal.runtime.leadership import Leadership
from codequal.runtime.startup import (
    StartupFailed,
    database_sentence,
    is_transient,
    one_line,
    part_sentence,
    unreachable_sentence,
)
from codequal.runtime.wiring import (
    build_alerting,
    build_analysis,
    build_remote_write,
    instance_name,
    setup_telemetry,
)
from codequal.storage.db import Database, WalCheckpointer, open_database
from codequal.telemetry.setup import Telemetry

STARTUP_RETRY_SECONDS = 2.0
# The collector's thresholds in the server. At Python's (700, 10, 10) a young collection ran every
# few hundred allocations: ingest's batches (thousands of samples a request, alive until the
# request ends) were walked and promoted, and older collections followed: 110-250 ms of each
# bench_clients remote-write round of 296 000 samples. At 10 000 the batches die before a
# collection: 0-35 ms a round. 50 000 gained nothing more.
GC_THRESHOLDS = (10_000, 10, 10)
_T = TypeVar("_T")


class NotStarted(RuntimeError):
    """A part that exists only once start-up finished was asked for before that."""


@dataclass(frozen=True)
class Started:
    """What runs once start-up finished; set once, all at the same moment."""

    telemetry: Telemetry
    analysis: AnalysisService
    anomalies: AnomalyService
    leadership: Leadership | None  # None when the background workers were not started


class Runtime:
    """The composition root of one process (the server, or a test's app)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db: Database = open_database(settings.resolved_database_url)
        self.checkpointer = WalCheckpointer(self.db)  # SQLite: the log copied off the writers
        self.redis: redis.Redis | None = None
        if settings.redis_url is not None:
            self.redis = redis.Redis.from_url(
                settings.redis_url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
            )
        self.instance = instance_name(settings)
        self.alerting: AlertingService = build_alerting(settings, self.db)
        # Every sample the history stores is also shipped to CODEQUAL_REMOTE_WRITE_URL.
        self.remote_write = build_remote_write(settings, self.alerting.history.store)
        self.started: Started | None = None
        self.ready = threading.Event()
        self.shutting_down = False
        self.startup_error: str | None = None  # why /ready says 503, while retrying or for good
        self.failed = False  # start-up gave up: this process will not become ready
        # Called with each retry's reason before telemetry exists (stderr by default).
        self.notice: Callable[[str], None] = _to_stderr

    # -- what exists once started ---------------------------------------------------------------
    def _require(self) -> Started:
        if self.started is None:
            raise NotStarted("CodeQual has not finished starting")
        return self.started

    @property
    def telemetry(self) -> Telemetry:
        return self._require().telemetry

    @property
    def analysis(self) -> AnalysisService:
        return self._require().analysis

    @property
    def anomalies(self) -> AnomalyService:
        return self._require().anomalies

    @property
    def leadership(self) -> Leadership | None:
        return self.started.leadership if self.started is not None else None

    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.shutting_down

    def wait_ready(self, timeout: float = 30.0) -> bool:
        return self.ready.wait(timeout)

    # -- start-up -------------------------------------------------------------------------------
    def start(
        self, stop: threading.Event, *, set_global: bool = False, start_workers: bool = True
    ) -> None:
        """Migrate (retrying while the database is unreachable), then start every part.

        Returns having started nothing when ``stop`` is set while it still retries. Raises
        :class:`StartupFailed` with one sentence for the operator when start-up cannot go on;
        ``/ready`` then says why. With ``start_workers``, the role decides the rest: ``all``
        and ``worker`` run the analysis workers and campaign for the leader's duties; ``api``
        does neither, and only scrapes its own metrics into the history.
        """
        try:
            if self._migrate(stop):
                self.checkpointer.start()
                self._start_parts(set_global, start_workers)
        except StartupFailed as exc:
            self.startup_error, self.failed = str(exc), True
            raise

    def _start_parts(self, set_global: bool, start_workers: bool) -> None:
        telemetry = _step("telemetry", lambda: setup_telemetry(
            self.settings, self.db, set_global=set_global
        ))  # fmt: skip
        analysis = _step(
            "the analysis pipeline", lambda: build_analysis(self.settings, self.db, telemetry)
        )
        self.alerting.attach(telemetry)
        anomalies = AnomalyService(self.alerting.history.store, self.db, self.alerting.notifier)
        leadership = None
        works = start_workers and self.settings.role != "api"
        if works:
            leadership = _step("leader election", lambda: self._campaign(telemetry, anomalies))
            anomalies.start()
        else:
            self.alerting.set_active(False)  # never leads: no rules, notices or retention here
        if start_workers:
            _step("alerting", self.alerting.start)
            if self.remote_write is not None:
                self.remote_write.start()
        COLLECTOR.attach(analysis.deepwiki, self.db)
        if works:
            _step("the analysis workers", analysis.start)
        self.started = Started(telemetry, analysis, anomalies, leadership)
        self.startup_error = None
        if set_global:
            # The server process's objects built so far live as long as it does: moving them out
            # of the collector's reach keeps full collections from walking them (they were the
            # p99 latency tail under load). Only for `codequal serve`, which owns its process;
            # so are the thresholds.
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
        self.ready.set()
        telemetry.logger("server").info(
            "codequal started",
            url=f"http://{self.settings.host}:{self.settings.port}",
            version=__version__,
            database=self.db.dialect,
            data_dir=str(self.settings.data_dir),
        )

    def _migrate(self, stop: threading.Event) -> bool:
        """Apply the migrations; retry only an unreachable database, up to the start-up timeout."""
        timeout = self.settings.startup_timeout
        give_up = time.monotonic() + timeout
        while not stop.is_set():
            try:
                self.db.migrate()
                return True
            except Exception as exc:
                if not is_transient(self.db, exc):
                    raise StartupFailed(database_sentence(self.db, exc)) from exc
                if time.monotonic() >= give_up:
                    raise StartupFailed(unreachable_sentence(self.db, timeout, exc)) from exc
                self.startup_error = f"database not reachable yet: {one_line(exc)}"
                self.notice(
                    f"codequal: {self.startup_error}; retrying in {STARTUP_RETRY_SECONDS:g} s "
                    f"(giving up after {timeout:g} s, CODEQUAL_STARTUP_TIMEOUT)"
                )
            stop.wait(STARTUP_RETRY_SECONDS)
        return False

    def _campaign(self, telemetry: Telemetry, anomalies: AnomalyService) -> Leadership:
        """Run the singleton work only while this replica holds the leader lock."""
        log = telemetry.logger("cluster")

        def changed(leading: bool) -> None:
            log.info("leadership gained" if leading else "leadership lost", leader=leading)

        def failed(exc: BaseException) -> None:
            log.warn("leader election failed", error=str(exc)[:300])

        leadership = Leadership(self.db, on_error=failed)
        for service in (self.alerting, anomalies):
            service.set_active(False)
            leadership.subscribe(service.set_active)
        leadership.subscribe(changed)
        leadership.start()
        return leadership

    # -- shutdown -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every part, the work first and telemetry last, within the shutdown budget."""
        budget = self.settings.shutdown_timeout
        started = self.started
        if started is not None:
            # Running analyses get half the budget; unfinished ones are requeued after restart.
            started.analysis.stop(budget / 2)
            COLLECTOR.detach()
            started.anomalies.stop(budget / 8)
        self.alerting.stop(budget / 4)
        if self.remote_write is not None:  # after the history's last flush offered its samples
            self.remote_write.shutdown(budget / 8)
        if started is not None and started.leadership is not None:
            started.leadership.stop(1.0)  # after the work stopped: another replica takes over
        if started is not None:
            started.telemetry.logger("server").info("codequal stopping")
            started.telemetry.shutdown(budget / 2)
        if self.redis is not None:
            self.redis.close()
        self.checkpointer.stop()
        self.db.dispose()


def _step(part: str, run: Callable[[], _T]) -> _T:
    """Run one start-up step; anything it raises becomes a StartupFailed naming the part."""
    try:
        return run()
    except Exception as exc:
        raise StartupFailed(part_sentence(part, exc)) from exc


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
