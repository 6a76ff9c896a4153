"""Wires metric history, rule evaluation and notifications for the server.

Built in ``create_app`` (so bad channel or rule configuration stops ``codequal serve`` before it
binds) and started with the other background workers.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any, cast

from codequal.alerting.channels import build_channels
from codequal.alerting.evaluator import EvaluationResult
from codequal.alerting.notifier import Notifier, NotifierConfig
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
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.setup import Telemetry
from codequal.tsdb.scrape import Collectable
from codequal.tsdb.service import DAY_SECONDS, MetricHistory


def external_url(settings: Settings) -> str:
    return settings.external_url or f"http://{settings.host}:{settings.port}"


def rule_groups(settings: Settings) -> list[RuleGroup]:
    """The shipped rules, the shipped SLOs' generated rules, and CODEQUAL_RULE_FILES."""
    extra = [p.strip() for p in (settings.rule_files or "").split(",") if p.strip()]
    try:
        files = default_rule_files() + (expand_rule_paths(extra) if extra else [])
        groups = load_rule_files(files)
        groups += parse_rule_file(dump_rules(load_spec()), "<shipped SLOs>")
    except (RuleFileError, ValueError) as exc:
        raise ConfigError(f"CODEQUAL_RULE_FILES: {exc}") from None
    return groups


@dataclass
class AlertingService:
    history: MetricHistory
    notifier: Notifier
    scheduler: RuleScheduler

    @classmethod
    def build(cls, settings: Settings, db: Database) -> AlertingService:
        """Construct (no threads, no I/O but reading rule files); raises ConfigError."""
        history = MetricHistory(
            db,
            cast(Collectable, REGISTRY),  # prometheus_client's registry is a collector
            # The machine's name, not the bind address: every replica binds 0.0.0.0.
            instance=f"{socket.gethostname()}:{settings.port}",
            scrape_interval=settings.scrape_interval,
            retention=settings.tsdb_retention_days * DAY_SECONDS,
        )
        notifier = Notifier(
            AlertingStore(db),
            build_channels(settings),
            NotifierConfig(external_url=external_url(settings)),
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
        )
        return cls(history, notifier, scheduler)

    def attach(self, telemetry: Telemetry) -> None:
        """Critical log lines page through the same notifier; scheduler errors are captured."""
        telemetry.alert_hook.subscribe(self.notifier.log_subscriber)
        errors = telemetry.errors

        def on_error(exc: BaseException) -> None:
            if isinstance(exc, Exception):
                errors.capture_exception(exc, {"component": "rules"})

        self.scheduler.on_error = on_error

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
