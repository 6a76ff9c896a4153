"""The catalogue metrics an analysis updates when it ends, by status.

``completed`` and ``partial`` delivered a report; ``failed`` is the service's failure;
``rejected`` is the caller's mistake, counted apart so it never pages anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codequal.analysis.agents import AGENTS
from codequal.analysis.store import MODES, AnalysisRecord, Outcome
from codequal.telemetry.metrics import (
    AGENT_EXECUTION,
    ANALYSIS_COMPLETED,
    ANALYSIS_COST,
    ANALYSIS_DURATION,
    ANALYSIS_FAILED,
    ANALYSIS_REJECTED,
    ANALYSIS_STARTED,
    CRITICAL_FINDINGS,
    REPOSITORIES_ANALYZED,
    organization_label,
    repository_label,
)

# The failure kinds the pipeline raises, for zero-initialised counters.
KNOWN_ERROR_TYPES = (
    "error",
    "internal",
    "timeout",
    "deepwiki",
    "disk_full",
    "llm_provider",
    "agent_AgentError",
    "agent_AgentTimeout",
)
# Why an analysis was rejected: the caller's mistakes.
REJECTION_REASONS = ("unknown_ref", "bad_ref", "unreachable", "refused", "repository")


# How an analysis ends (the duration histogram's status label).
ANALYSIS_STATUSES = ("completed", "partial", "failed", "rejected")


def initialise_counters(providers: Sequence[str] = ()) -> None:
    """Create the analysis counters' series at 0 for every mode, known failure kind and
    rejection reason, the duration histogram's for every mode, size class and outcome, and
    the agent timing and cost histograms' for every agent, and every
    mode with each LLM ``providers`` (and "none").

    A counter series that first appears already at 1 hides that increment from ``rate()`` and
    ``increase()``, so the first failure of a kind would never reach the failure-rate alert or
    the success SLO. Prometheus's advice: initialise the series you know of to zero.
    """
    for name, agent in AGENTS.items():
        AGENT_EXECUTION.labels(agent=name, provider=agent.provider)
    for reason in REJECTION_REASONS:
        ANALYSIS_REJECTED.labels(reason=reason)
    for mode in MODES:
        for provider in ("none", *providers):
            ANALYSIS_COST.labels(mode=mode, provider=provider)
        ANALYSIS_STARTED.labels(mode=mode)
        ANALYSIS_COMPLETED.labels(mode=mode)
        # The latency SLO's rate() needs the histogram before its first analysis, too.
        for size in ("small", "medium", "large", "huge", "unknown"):
            for status in ANALYSIS_STATUSES:
                ANALYSIS_DURATION.labels(mode=mode, repository_size=size, status=status)
        for error_type in KNOWN_ERROR_TYPES:
            ANALYSIS_FAILED.labels(mode=mode, error_type=error_type)


def observe_outcome(
    record: AnalysisRecord, outcome: Outcome, mode: str, profile: dict[str, Any], wall: float
) -> None:
    """Count one finished analysis in the catalogue metrics."""
    size = profile.get("sizeClass", "unknown")
    ANALYSIS_DURATION.labels(mode=mode, repository_size=size, status=outcome.status).observe(wall)
    if outcome.status == "rejected":
        ANALYSIS_REJECTED.labels(reason=outcome.error_type or "repository").inc()
        return
    if outcome.status == "failed":
        error_type = outcome.error_type or "error"
        ANALYSIS_FAILED.labels(mode=record.requested_mode, error_type=error_type).inc()
        return
    ANALYSIS_COMPLETED.labels(mode=record.requested_mode).inc()
    language = profile.get("primaryLanguage", "unknown")
    REPOSITORIES_ANALYZED.labels(
        organization=organization_label(record.repository_url), language=language
    ).inc()
    repository = repository_label(record.repository_url)
    for finding in outcome.findings:
        if finding["severity"] == "critical" and finding.get("new", True):
            CRITICAL_FINDINGS.labels(type=finding["rule"], repository=repository).inc()
