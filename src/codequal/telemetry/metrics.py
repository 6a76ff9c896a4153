"""The metric catalogue: the one place that declares every CodeQual metric.

Names are public API (dashboards and alert rules depend on them): the seed plan's names, base
units (seconds, bytes, ratio 0..1, dollars). Every label has a bounded set of values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
    "codequal_analysis_completed_total", "PR analyses completed.", ["mode"], registry=REGISTRY
)
ANALYSIS_FAILED = Counter(
    "codequal_analysis_failed_total",
    "PR analyses failed, by error type.",
    ["mode", "error_type"],
    registry=REGISTRY,
)
ANALYSIS_DURATION = Histogram(
    "codequal_analysis_duration_seconds",
    "Time taken for complete PR analysis.",
    ["mode", "repository_size", "status"],
    buckets=ANALYSIS_DURATION_BUCKETS,
    registry=REGISTRY,
)
ACTIVE_ANALYSES = Gauge(
    "codequal_active_analyses", "Analyses running now.", registry=REGISTRY
)
ANALYSIS_COST = Histogram(
    "codequal_analysis_cost_dollars",
    "Cost of analysis in dollars.",
    ["mode", "provider"],
    buckets=COST_BUCKETS,
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
