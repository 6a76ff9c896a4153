"""The metric catalogue: the one place that declares every CodeQual metric.

Names are public API (dashboards and alert rules depend on them): the seed plan's names, base
units (seconds, bytes, ratio 0..1, dollars). Every label has a bounded set of values: the
``repository`` and ``organization`` labels go through :func:`repository_label` and
:func:`organization_label`, which cap them (see :mod:`codequal.telemetry.labels`).
Process and system CPU / memory come from psutil at scrape time
(:mod:`codequal.telemetry.system`). :func:`catalogue` lists everything registered here;
``docs/metrics.md`` is :func:`render_markdown`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from codequal.telemetry import labels as _labels
from codequal.telemetry.system import SystemCollector

# Re-exported so instrumented code takes the metric and its label helper from one module.
OTHER = _labels.OTHER
LabelCap = _labels.LabelCap
repository_label = _labels.repository_label
organization_label = _labels.organization_label
configure_label_cap = _labels.configure_label_cap

REGISTRY = CollectorRegistry(auto_describe=True)

# The plan's buckets (10 .. 600 s) plus finer ones below 10 s for quick analyses.
ANALYSIS_DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# The plan's cost buckets plus finer ones below one cent.
COST_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
AGENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
MEMORY_BUCKETS = tuple(float(2**n) for n in range(16, 34, 2))  # 64 KiB .. 8 GiB

# -- analyses (the seed plan) -------------------------------------------------------------
ANALYSIS_STARTED = Counter(
    "codequal_analysis_started_total", "PR analyses started.", ["mode"], registry=REGISTRY
)
ANALYSIS_COMPLETED = Counter(
    "codequal_analysis_completed_total",
    "PR analyses that delivered a report (status completed or partial).",
    ["mode"],
    registry=REGISTRY,
)
# Failures of the service only: a caller's mistake (a ref that does not exist, a repository
# that cannot be reached or is refused by policy) is counted in ANALYSIS_REJECTED instead,
# so the failure-rate alert and the success SLO page for what operators can fix.
ANALYSIS_FAILED = Counter(
    "codequal_analysis_failed_total",
    "PR analyses the service failed, by error type (client mistakes are rejected, not failed).",
    ["mode", "error_type"],
    registry=REGISTRY,
)
ANALYSIS_REJECTED = Counter(
    "codequal_analysis_rejected_total",
    "PR analyses that started and were rejected for a client mistake, by reason "
    "(unknown_ref, bad_ref, unreachable, refused, repository).",
    ["reason"],
    registry=REGISTRY,
)
ANALYSIS_DURATION = Histogram(
    "codequal_analysis_duration_seconds",
    "Time taken for complete PR analysis.",
    ["mode", "repository_size", "status"],
    buckets=ANALYSIS_DURATION_BUCKETS,
    registry=REGISTRY,
)
ACTIVE_ANALYSES = Gauge("codequal_active_analyses", "Analyses running now.", registry=REGISTRY)
ANALYSIS_COST = Histogram(
    "codequal_analysis_cost_dollars",
    "Cost of analysis in dollars.",
    ["mode", "provider"],
    buckets=COST_BUCKETS,
    registry=REGISTRY,
)
# Counted at observation time so the AnalysisCostOverThreshold alert is exact at any
# threshold, not only at one of the histogram's bucket bounds.
ANALYSIS_COST_OVER_THRESHOLD = Counter(
    "codequal_analysis_cost_over_threshold_total",
    "Analyses that cost more than CODEQUAL_ANALYSIS_COST_ALERT dollars.",
    ["mode", "provider"],
    registry=REGISTRY,
)
REPOSITORIES_ANALYZED = Counter(
    "codequal_repositories_analyzed_total",
    "Repositories analysed (organisation label capped).",
    ["organization", "language"],
    registry=REGISTRY,
)
CRITICAL_FINDINGS = Counter(
    "codequal_critical_findings_total",
    "Critical security/quality issues found (repository label capped).",
    ["type", "repository"],
    registry=REGISTRY,
)

# -- components -----------------------------------------------------------------------------
DEEPWIKI_AVAILABILITY = Gauge(
    "codequal_deepwiki_availability",
    "1 when DeepWiki can work (workspace writable, git runs, worker alive), else 0.",
    registry=REGISTRY,
)
DEEPWIKI_ERRORS = Counter(
    "codequal_deepwiki_errors_total",
    "Total DeepWiki errors (repository label capped).",
    ["error_type", "repository"],
    registry=REGISTRY,
)
VECTORDB_LATENCY = Histogram(
    "codequal_vectordb_latency_seconds",
    "Knowledge-store (vector DB) operation latency.",
    ["operation"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
AGENT_EXECUTION = Histogram(
    "codequal_agent_execution_seconds",
    "Time one agent took on one analysis.",
    ["agent", "provider"],
    buckets=AGENT_BUCKETS,
    registry=REGISTRY,
)
ERRORS = Counter(
    "codequal_errors_total",
    "Errors captured, by service and exception type.",
    ["service", "error_type"],
    registry=REGISTRY,
)

# -- the telemetry pipeline itself --------------------------------------------------------
LOG_ENTRIES = Counter(
    "codequal_log_entries_total", "Log entries emitted, by level.", ["level"], registry=REGISTRY
)
LOG_ENTRIES_DROPPED = Counter(
    "codequal_log_entries_dropped_total",
    "Log entries dropped because a sink's queue was full.",
    ["sink"],
    registry=REGISTRY,
)
SINK_ERRORS = Counter(
    "codequal_sink_errors_total",
    "Batches a telemetry sink failed to write.",
    ["sink"],
    registry=REGISTRY,
)

# Export sinks with a disk spool (Loki, Elasticsearch).
SINK_SENT = Counter(
    "codequal_sink_sent_total", "Entries a sink delivered.", ["sink"], registry=REGISTRY
)
SINK_FAILED = Counter(
    "codequal_sink_failed_total",
    "Entries a destination rejected permanently (4xx other than 429).",
    ["sink"],
    registry=REGISTRY,
)
SINK_RETRIED = Counter(
    "codequal_sink_retried_total",
    "Entries sent again after a failure.",
    ["sink"],
    registry=REGISTRY,
)
SINK_SPOOLED = Counter(
    "codequal_sink_spooled_total", "Entries written to a sink's spool.", ["sink"], registry=REGISTRY
)
SINK_DROPPED = Counter(
    "codequal_sink_dropped_total",
    "Entries dropped, oldest first, because a sink's spool was over its size cap.",
    ["sink"],
    registry=REGISTRY,
)
SINK_QUEUE_DROPPED = Counter(
    "codequal_sink_queue_dropped_total",
    "Entries dropped, oldest first, because a sink's in-memory queue in front of its spool was"
    " full.",
    ["sink"],
    registry=REGISTRY,
)
SINK_QUEUE_DEPTH = Gauge(
    "codequal_sink_queue_depth", "Entries waiting in a sink's spool.", ["sink"], registry=REGISTRY
)
SINK_SPOOL_BYTES = Gauge(
    "codequal_sink_spool_bytes", "Bytes of undelivered spool records.", ["sink"], registry=REGISTRY
)
SINK_LAST_SUCCESS = Gauge(
    "codequal_sink_last_success_timestamp_seconds",
    "Unix time of a sink's last successful delivery.",
    ["sink"],
    registry=REGISTRY,
)

# -- HTTP -----------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "codequal_http_requests_total",
    "HTTP requests served, by route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "codequal_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["method", "route"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

AUTH_FAILURES = Counter(
    "codequal_auth_failures_total",
    "Rejected authentications, by reason (missing, malformed, expired, signature, ...).",
    ["reason"],
    registry=REGISTRY,
)

INGEST_ITEMS = Counter(
    "codequal_ingest_items_total",
    "Items received by the ingest endpoints, by wire format, item type and outcome "
    "(accepted and stored, ignored by type, rejected as invalid).",
    ["format", "type", "outcome"],
    registry=REGISTRY,
)

# -- units of work (resource monitor) -------------------------------------------------------
WORK_WALL = Histogram(
    "codequal_work_wall_seconds",
    "Wall time of a tracked unit of work (an analysis, a DeepWiki run).",
    ["kind"],
    buckets=AGENT_BUCKETS,
    registry=REGISTRY,
)
WORK_CPU = Histogram(
    "codequal_work_cpu_seconds",
    "CPU seconds (process and child processes) of a tracked unit of work.",
    ["kind"],
    buckets=AGENT_BUCKETS,
    registry=REGISTRY,
)
WORK_MEMORY = Histogram(
    "codequal_work_peak_memory_delta_bytes",
    "Peak resident memory above the level at the start of a tracked unit of work.",
    ["kind"],
    buckets=MEMORY_BUCKETS,
    registry=REGISTRY,
)

# -- replicas --------------------------------------------------------------------------------
LEADER = Gauge(
    "codequal_leader",
    "1 while this replica holds the leader lock and runs the singleton work (rule evaluation"
    " and notifications, anomaly scans, metric retention), else 0.",
    registry=REGISTRY,
)
LEADER_CHANGES = Counter(
    "codequal_leader_changes_total",
    "Times this replica gained or lost the leader lock.",
    registry=REGISTRY,
)

# -- process and system (psutil, read at scrape time) ---------------------------------------
SYSTEM_COLLECTOR = SystemCollector()
REGISTRY.register(SYSTEM_COLLECTOR)


# -- the catalogue ----------------------------------------------------------------------------
class MetricInfo(NamedTuple):
    """One catalogue row: what ``codequal metrics list`` and docs/metrics.md show."""

    name: str
    type: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]
    help: str


def catalogue(registry: CollectorRegistry = REGISTRY) -> list[MetricInfo]:
    """Every metric registered on ``registry``, in registration order."""
    return [info for collector in _collectors(registry) for info in _describe(collector)]


def _collectors(registry: CollectorRegistry) -> list[Any]:
    # prometheus_client has no public way to list a registry's collectors; reading its table
    # keeps the catalogue derived from what is really registered rather than a second list.
    with registry._lock:
        return list(registry._collector_to_names)


def _describe(collector: Any) -> list[MetricInfo]:
    if isinstance(collector, MetricWrapperBase):
        return [_wrapper_info(collector)]
    describe = getattr(collector, "describe", None) or collector.collect
    return [_family_info(family) for family in describe()]


def _wrapper_info(metric: Any) -> MetricInfo:
    # Label names and buckets are only kept on the wrapper: a family without samples has none.
    bounds = getattr(metric, "_upper_bounds", ())
    return MetricInfo(
        name=_exposed_name(metric._name, metric._type),
        type=metric._type,
        labels=tuple(metric._labelnames),
        buckets=tuple(float(b) for b in bounds if not math.isinf(b)),
        help=metric._documentation,
    )


def _family_info(family: Any) -> MetricInfo:
    labels = {key for sample in family.samples for key in sample.labels}
    bounds = {float(s.labels["le"]) for s in family.samples if "le" in s.labels}
    return MetricInfo(
        name=_exposed_name(family.name, family.type),
        type=family.type,
        labels=tuple(sorted(labels - {"le", "quantile"})),
        buckets=tuple(sorted(b for b in bounds if not math.isinf(b))),
        help=family.documentation,
    )


# prometheus_client strips these suffixes from a family's name; the exposed samples keep them.
_EXPOSED_SUFFIX = {"counter": "_total", "info": "_info"}


def _exposed_name(name: str, metric_type: str) -> str:
    return name + _EXPOSED_SUFFIX.get(metric_type, "")


# -- docs/metrics.md ----------------------------------------------------------------------------
_MARKDOWN_HEAD = """# Metric catalogue

Generated from `codequal.telemetry.metrics`; do not edit by hand. Regenerate with

    codequal metrics list --format markdown > docs/metrics.md

Units are base units: seconds, bytes, ratios 0..1, dollars. The `repository` and
`organization` labels are capped: the first `label_cap` (`CODEQUAL_LABEL_CAP`, default 50)
distinct values get their own series, every later one is counted as `other`.

Every analysis that starts (`codequal_analysis_started_total`) ends in exactly one of three
counters. `codequal_analysis_completed_total` counts the ones that delivered a report, whether
complete or `partial` (an agent failed or a file could not be read: the report says which).
`codequal_analysis_failed_total` counts failures of the service (`error_type`: `internal`,
`deepwiki`, `disk_full`, `llm_provider`, `timeout`, an agent's crash). A caller's mistake is
not a failure: a ref that does not exist (`unknown_ref`), a ref git cannot parse (`bad_ref`),
a repository that cannot be reached (`unreachable`) or that the repository policy refuses
(`refused`) ends the analysis as `rejected` and counts in `codequal_analysis_rejected_total`.
`HighFailureRate` and the `analysis-success` SLO divide failures by the analyses that were not
rejected. A request refused at submission (HTTP 400: a local path over the API, a bad ref)
never starts and is counted in neither: see `codequal_http_requests_total{status="400"}`.

| name | type | labels | buckets | help |
|---|---|---|---|---|
"""


def render_markdown(infos: list[MetricInfo] | None = None) -> str:
    """docs/metrics.md: the catalogue as a Markdown table, in catalogue order."""
    rows = [_markdown_row(info) for info in (catalogue() if infos is None else infos)]
    return _MARKDOWN_HEAD + "".join(rows)


def _markdown_row(info: MetricInfo) -> str:
    labels = ", ".join(f"`{label}`" for label in info.labels)
    cells = (f"`{info.name}`", info.type, labels, format_buckets(info.buckets), info.help)
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"


def format_buckets(buckets: tuple[float, ...]) -> str:
    """Bucket bounds as short exact numbers: ``0.5, 1, 2.5, 65536``."""
    return ", ".join(str(int(b)) if b.is_integer() else repr(b) for b in buckets)
