"""Wires metric history, rule evaluation and notifications for the server.

Built in ``create_app`` (so bad channel or rule configuration stops ``codequal serve`` before it
binds) and started with the other background workers.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, cast

from codequal.alerting.channels import build_channels
from codequal.alerting.cost_rules import cost_rules_for
from codequal.alerting.evaluator import EvaluationResult
from codequal.alerting.notifier import Notifier, NotifierConfig
from codequal.alerting.routing import Timing
from codequal.alerting.rules import (
    RuleFileError,
    RuleGroup,
    default_rule_files,
    expand_rule_paths,
    load_rule_files,
    parse_rule_file,
)
from codequal.alerting.scheduler import RuleScheduler
from codequal.analytics.slo import dump_rules, load_spec
from codequal.config import ConfigError, Settings
from codequal.storage.alerting_store import AlertingStore
from codequal.storage.db import Database
from codequal.storage.kv import KeyValueStore
from codequal.storage.logs import LogStore
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.setup import Telemetry
from codequal.tsdb.scrape import Collectable
from codequal.tsdb.service import DAY_SECONDS, MetricHistory, query_limits

BLIND_AFTER = 2  # failed evaluation rounds in a row before the critical "cannot evaluate" entry


def external_url(settings: Settings) -> str:
    return settings.external_url or f"http://{settings.host}:{settings.port}"


def rule_groups(settings: Settings) -> list[RuleGroup]:
    """The shipped rules, the shipped SLOs' generated rules, the cost alerts generated from
    CODEQUAL_DAILY_BUDGET / CODEQUAL_ANALYSIS_COST_ALERT, and CODEQUAL_RULE_FILES."""
    extra = [p.strip() for p in (settings.rule_files or "").split(",") if p.strip()]
    try:
        files = default_rule_files() + (expand_rule_paths(extra) if extra else [])
        groups = load_rule_files(files)
        groups += parse_rule_file(dump_rules(load_spec()), "<shipped SLOs>")
    except (RuleFileError, ValueError) as exc:
        raise ConfigError(f"CODEQUAL_RULE_FILES: {exc}") from None
    return groups + cost_rules_for(settings)


@dataclass
class AlertingService:
    history: MetricHistory
    notifier: Notifier
    scheduler: RuleScheduler
    critical_logs: CriticalLogFeed = field(repr=False)

    @classmethod
    def build(cls, settings: Settings, db: Database) -> AlertingService:
        """Construct (no threads, no I/O but reading rule files); raises ConfigError."""
        history = MetricHistory(
            db,
            cast(Collectable, REGISTRY),  # prometheus_client's registry is a collector
            # The machine's name, not the bind address: every replica binds 0.0.0.0.
            instance=settings.instance or f"{socket.gethostname()}:{settings.port}",
            scrape_interval=settings.scrape_interval,
            flush_interval=settings.tsdb_flush_interval,
            retention=settings.tsdb_retention_days * DAY_SECONDS,
        )
        notifier = Notifier(
            AlertingStore(db),
            build_channels(settings),
            NotifierConfig(
                timing=Timing(*settings.alert_timing), external_url=external_url(settings)
            ),
        )

        def deliver(result: EvaluationResult) -> None:
            notifier.submit(result.transitions, current=result.state.alerts())

        scheduler = RuleScheduler(
            rule_groups(settings),
            history.store,
            KeyValueStore(db),
            interval=settings.rule_interval,
            on_result=deliver,
            on_error=lambda _exc: None,
            external_url=external_url(settings),
            limits=query_limits(settings),
        )
        service = cls(history, notifier, scheduler, CriticalLogFeed(db, notifier))
        notifier.sources.append(service.critical_logs.pull)
        return service

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
        """Leadership (:mod:`codequal.cluster`): every replica scrapes its own metrics; only
        the leader evaluates rules, notifies and deletes expired history."""
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
