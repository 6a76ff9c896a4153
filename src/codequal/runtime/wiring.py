"""From settings to parts: the one place that reads :class:`~codequal.config.Settings` to build
telemetry, alerting and the analysis pipeline. Each part takes narrow arguments; nothing here
starts a thread or touches the network (telemetry excepted: it starts its own workers).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any, cast

from codequal import __version__
from codequal.alerting.channels import build_channels
from codequal.alerting.cost_rules import cost_rule_groups
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
from codequal.alerting.service import AlertingService, CriticalLogFeed
from codequal.alerting.store import AlertingStore
from codequal.analysis.costs import DEFAULT_PRICING, InfraPrices, PricingTable
from codequal.analysis.credentials import CredentialBox
from codequal.analysis.deepwiki import DeepWiki
from codequal.analysis.exclude import split_patterns
from codequal.analysis.jobs import WorkerPool
from codequal.analysis.observe import initialise_counters
from codequal.analysis.orchestrator import Orchestrator
from codequal.analysis.policy import RepositoryPolicy
from codequal.analysis.providers import LLMProvider, OpenAICompatible
from codequal.analysis.service import AnalysisService
from codequal.analysis.store import AnalysisStore, CleanupLog, KnowledgeStore
from codequal.analytics.reports import compute_costs
from codequal.analytics.slo import dump_rules, load_spec
from codequal.config import Settings
from codequal.exceptions import ConfigError
from codequal.security.secret import load_or_create_secret
from codequal.storage.db import Database
from codequal.storage.kv import KeyValueStore
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.setup import Telemetry, TelemetryConfig, start_telemetry
from codequal.tsdb.remote_write import RemoteWriteSender
from codequal.tsdb.scrape import Collectable
from codequal.tsdb.service import DAY_SECONDS, MetricHistory, query_limits
from codequal.tsdb.store import SampleStore


# -- telemetry --------------------------------------------------------------------------------
def telemetry_config(settings: Settings) -> TelemetryConfig:
    dsn = settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else None
    return TelemetryConfig(
        service_name=settings.service_name,
        environment=settings.environment,
        release=settings.release or __version__,
        log_level=settings.log_level,
        log_format=settings.log_format,
        log_queue_size=settings.log_queue_size,
        log_batch_size=settings.log_batch_size,
        log_flush_interval=settings.log_flush_interval,
        shutdown_timeout=settings.shutdown_timeout,
        label_cap=settings.label_cap,
        data_dir=settings.data_dir,
        sentry_dsn=dsn,
        otlp_endpoint=settings.otlp_endpoint,
        loki_url=settings.loki_url,
        elasticsearch_url=settings.elasticsearch_url,
    )


def setup_telemetry(settings: Settings, db: Database | None, **options: Any) -> Telemetry:
    """Build and start the telemetry ``settings`` describe; ``db`` None means no store sinks.

    ``options`` are :func:`~codequal.telemetry.setup.start_telemetry`'s (``console``,
    ``extra_sinks``, ``bridge_stdlib``, ``set_global``).
    """
    return start_telemetry(telemetry_config(settings), db, **options)


# -- alerting ---------------------------------------------------------------------------------
def external_url(settings: Settings) -> str:
    """The base of runbook and generator links in alerts."""
    return settings.external_url or f"http://{settings.host}:{settings.port}"


def instance_name(settings: Settings) -> str:
    """This replica's ``instance`` label: the machine's name, not the bind address (every
    replica binds 0.0.0.0)."""
    return settings.instance or f"{socket.gethostname()}:{settings.port}"


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
    return groups + cost_rule_groups(settings.daily_budget, settings.analysis_cost_alert)


def build_alerting(settings: Settings, db: Database) -> AlertingService:
    """Metric history, notifier and rule scheduler (no threads, no I/O but reading rule files);
    raises ConfigError for a channel or rule file that cannot be used."""
    history = MetricHistory(
        db,
        cast(Collectable, REGISTRY),  # prometheus_client's registry is a collector
        instance=instance_name(settings),
        scrape_interval=settings.scrape_interval,
        flush_interval=settings.tsdb_flush_interval,
        retention=settings.tsdb_retention_days * DAY_SECONDS,
    )
    notifier = Notifier(
        AlertingStore(db),
        build_channels(settings),
        NotifierConfig(timing=Timing(*settings.alert_timing), external_url=external_url(settings)),
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
    service = AlertingService(history, notifier, scheduler, CriticalLogFeed(db, notifier))
    notifier.sources.append(service.critical_logs.pull)
    return service


def build_remote_write(settings: Settings, store: SampleStore) -> RemoteWriteSender | None:
    """The sender to CODEQUAL_REMOTE_WRITE_URL, subscribed to ``store`` (started by the caller)."""
    if not settings.remote_write_url:
        return None
    sender = RemoteWriteSender(settings.remote_write_url, settings.data_dir)
    store.subscribe(sender.offer)
    return sender


# -- the analysis pipeline --------------------------------------------------------------------
def build_provider(settings: Settings) -> LLMProvider | None:
    if not settings.llm_base_url:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return OpenAICompatible(settings.llm_base_url, settings.llm_model, key)


def repository_policy(settings: Settings) -> RepositoryPolicy:
    """What analyses submitted over the API may clone (CODEQUAL_REPOSITORY_ROOTS,
    CODEQUAL_ALLOW_PRIVATE_REPOSITORIES, CODEQUAL_ALLOW_SSH_REPOSITORIES)."""
    return RepositoryPolicy.from_settings(
        settings.repository_roots,
        settings.allow_private_repositories,
        settings.allow_ssh_repositories,
    )


def credential_box(settings: Settings) -> CredentialBox:
    """Seals repository credentials with a key derived from the signing secret every replica
    shares (CODEQUAL_JWT_SECRET), or from the data dir's own secret on a single server."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    return CredentialBox(secret or load_or_create_secret(settings.data_dir))


def build_analysis(
    settings: Settings, db: Database, telemetry: Telemetry, *, local_user: bool = False
) -> AnalysisService:
    """Stores, DeepWiki, the orchestrator and its worker pool (started by the caller).

    ``local_user``: the CLI, which may analyse whatever its user can read or reach; the server
    applies the repository policy.
    """
    provider = build_provider(settings)
    initialise_counters([provider.name] if provider is not None else [])
    deepwiki = DeepWiki(settings.resolved_deepwiki_dir, CleanupLog(db))
    orchestrator = Orchestrator(
        deepwiki=deepwiki,
        knowledge=KnowledgeStore(db),
        telemetry=telemetry,
        prices=InfraPrices(
            settings.price_cpu_hour, settings.price_memory_gb_hour, settings.price_disk_gb_month
        ),
        pricing=PricingTable.load(settings.pricing_file or DEFAULT_PRICING),
        provider=provider,
        agent_timeout=settings.agent_timeout,
        cost_alert=settings.analysis_cost_alert,
        background=in_thread,
        analysis_timeout=settings.analysis_timeout,
        file_timeout=settings.file_timeout,
        exclude=split_patterns(settings.exclude),
        policy=RepositoryPolicy.permissive() if local_user else repository_policy(settings),
        clone_timeout=settings.clone_timeout,
        connect_timeout=settings.clone_connect_timeout,
        credentials=credential_box(settings),
    )
    store = AnalysisStore(db)
    pool = WorkerPool(store, orchestrator, size=settings.max_concurrent_analyses)
    deepwiki.worker_alive = pool.alive
    box = orchestrator.credentials
    return AnalysisService(store, deepwiki, orchestrator, pool, threading.Event(), box)


def in_thread(fn: Callable[[], Any]) -> None:
    """Run a background refresh of the knowledge store on its own daemon thread."""
    threading.Thread(target=fn, name="cq-knowledge-refresh", daemon=True).start()


# -- analytics --------------------------------------------------------------------------------
def compute_costs_for(
    settings: Settings, db: Database, period: float, now: float
) -> dict[str, Any]:
    """The cost report at the configured prices, daily budget and per-analysis threshold."""
    return compute_costs(
        db,
        period,
        now,
        pricing=PricingTable.load(settings.pricing_file or DEFAULT_PRICING),
        daily_budget=settings.daily_budget,
        analysis_threshold=settings.analysis_cost_alert,
    )
