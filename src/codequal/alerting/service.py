"""Metric history, rule evaluation and notifications, run together for the server.

Built by :func:`codequal.runtime.wiring.build_alerting` (so bad channel or rule configuration
stops ``codequal serve`` before it binds) and started with the other background workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codequal.alerting.notifier import Notifier
from codequal.alerting.scheduler import RuleScheduler
from codequal.storage.db import Database
from codequal.storage.kv import KeyValueStore
from codequal.telemetry.setup import Telemetry
from codequal.telemetry.stores.logs import LogStore
from codequal.tsdb.service import MetricHistory

BLIND_AFTER = 2  # failed evaluation rounds in a row before the critical "cannot evaluate" entry


@dataclass
class AlertingService:
    history: MetricHistory
    notifier: Notifier
    scheduler: RuleScheduler
    critical_logs: CriticalLogFeed = field(repr=False)

    def attach(self, telemetry: Telemetry) -> None:
        """Critical log lines page through the same notifier; scheduler errors are captured."""
        telemetry.alert_hook.subscribe(self.notifier.log_subscriber)
        errors = telemetry.errors
        log = telemetry.logger("rules")
        scheduler = self.scheduler

        def on_error(exc: BaseException) -> None:
            if isinstance(exc, Exception):
                errors.capture_exception(exc, {"component": "rules"})
            if scheduler.consecutive_failures == BLIND_AFTER:
                # Rules that cannot run cannot fire: this page goes out through the notifier,
                # which needs no database, while the metric history is unreachable.
                log.critical(
                    "alert rules cannot be evaluated",
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    failed_rounds=BLIND_AFTER,
                )

        self.scheduler.on_error = on_error

    def set_active(self, leading: bool) -> None:
        """Leadership (:mod:`codequal.runtime.leadership`): every replica scrapes its own
        metrics; only the leader evaluates rules, notifies and deletes expired history."""
        self.scheduler.set_active(leading)
        self.notifier.set_active(leading)
        self.history.retention.active = leading

    def start(self) -> None:
        self.history.start()
        self.notifier.start()
        self.scheduler.start()

    def stop(self, timeout: float) -> None:
        self.scheduler.stop(timeout / 3)
        self.notifier.stop(timeout / 3)
        self.history.stop(timeout / 3)

    def rules_overview(self) -> list[dict[str, Any]]:
        return self.scheduler.overview()


WATERMARK_KEY = "critical-log-watermark"


class CriticalLogFeed:
    """Critical entries every replica wrote to the shared log store, for the leader's notifier.

    The in-process hook only sees this process's entries; with several replicas a follower's
    critical entry reaches the pager through the store. The position is persisted, so a new
    leader carries on where the previous one stopped (a duplicate only postpones the
    resolve of an alert that is already firing).
    """

    def __init__(self, db: Database, notifier: Notifier) -> None:
        self._logs = LogStore(db)
        self._kv = KeyValueStore(db)
        self._notifier = notifier

    def pull(self) -> None:
        saved = self._kv.get(WATERMARK_KEY)
        if saved is None:  # the first leader ever: start from now, not from history
            self._kv.put(WATERMARK_KEY, {"id": self._logs.last_id()})
            return
        found = self._logs.critical_after(int(saved["id"]))
        if found:
            self._notifier.log_subscriber([entry for _, entry in found])
            self._kv.put(WATERMARK_KEY, {"id": found[-1][0]})
