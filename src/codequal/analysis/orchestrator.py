"""The plan's ``analyzePR``: knowledge store → DeepWiki → agents → aggregate → report.

Every step is a span under one ``analyze-pr`` trace, every log line in it carries the trace id,
and the catalogue metrics are updated from what really happened.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.trace import Status, StatusCode

from codequal.analysis import repo
from codequal.analysis.agents import AGENTS, MODE_AGENTS, choose_mode
from codequal.analysis.agents.base import SEVERITIES, AgentError, AgentInput, Finding
from codequal.analysis.costs import InfraPrices, Measured, PricingTable, cost_breakdown
from codequal.analysis.deepwiki import DeepWiki, profile_tree
from codequal.analysis.knowledge import freshness
from codequal.analysis.providers import LLMProvider, ProviderError
from codequal.analysis.store import MODES, AnalysisRecord, KnowledgeStore, Outcome
from codequal.exceptions import AnalysisError
from codequal.telemetry import context
from codequal.telemetry.metrics import (
    ACTIVE_ANALYSES,
    AGENT_EXECUTION,
    ANALYSIS_COMPLETED,
    ANALYSIS_COST,
    ANALYSIS_COST_OVER_THRESHOLD,
    ANALYSIS_DURATION,
    ANALYSIS_FAILED,
    ANALYSIS_STARTED,
    CRITICAL_FINDINGS,
    REPOSITORIES_ANALYZED,
    organization_label,
    repository_label,
)
from codequal.telemetry.setup import Telemetry

StepListener = Callable[[str], None]
T = TypeVar("T")


# The failure kinds the pipeline raises (AnalysisFailed / the error_type of repository,
# DeepWiki and provider errors), for zero-initialised counters.
KNOWN_ERROR_TYPES = (
    "error",
    "internal",
    "repository",
    "clone_failed",
    "unknown_ref",
    "timeout",
    "deepwiki",
    "disk_full",
    "llm_provider",
)


def initialise_counters(providers: Sequence[str] = ()) -> None:
    """Create the analysis counters' series at 0 for every mode and known failure kind, the
    duration histogram's for every mode, size class and outcome, the agent timing and cost
    histograms' for every agent, and every mode with each LLM
    ``providers`` (and "none").

    A counter series that first appears already at 1 hides that increment from ``rate()`` and
    ``increase()``, so the first failure of a kind would never reach the failure-rate alert or
    the success SLO. Prometheus's advice: initialise the series you know of to zero.
    """
    for name, agent in AGENTS.items():
        AGENT_EXECUTION.labels(agent=name, provider=agent.provider)
    for mode in MODES:
        for provider in ("none", *providers):
            ANALYSIS_COST.labels(mode=mode, provider=provider)
        ANALYSIS_STARTED.labels(mode=mode)
        ANALYSIS_COMPLETED.labels(mode=mode)
        # The latency SLO's rate() needs the histogram before its first analysis, too.
        for size in ("small", "medium", "large", "huge", "unknown"):
            for status in ("completed", "failed"):
                ANALYSIS_DURATION.labels(mode=mode, repository_size=size, status=status)
        for error_type in KNOWN_ERROR_TYPES:
            ANALYSIS_FAILED.labels(mode=mode, error_type=error_type)


class AnalysisFailed(AnalysisError):
    """An analysis cannot finish; ``error_type`` is the bounded metric label."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass
class _Run:
    """Mutable state of one analysis while it runs."""

    record: AnalysisRecord
    on_step: StepListener
    timings: dict[str, float] = field(default_factory=dict)
    mode: str | None = None
    mode_reason: str | None = None
    profile: dict[str, Any] | None = None
    deepwiki_measured: Measured = field(default_factory=lambda: Measured(0.0, 0.0, 0.0))
    agent_errors: dict[str, str] = field(default_factory=dict)
    llm: dict[str, Any] | None = None
    diff: dict[str, Any] | None = None  # size of the change and the mode `auto` would pick


@dataclass
class Orchestrator:
    deepwiki: DeepWiki
    knowledge: KnowledgeStore
    telemetry: Telemetry
    prices: InfraPrices = field(default_factory=InfraPrices)
    pricing: PricingTable | None = None
    provider: LLMProvider | None = None
    agent_timeout: float = 300.0
    cost_alert: float | None = None  # CODEQUAL_ANALYSIS_COST_ALERT: dollars per analysis
    clock: Callable[[], float] = time.time
    background: Callable[[Callable[[], None]], None] = lambda fn: fn()

    def run(self, record: AnalysisRecord, on_step: StepListener = lambda _s: None) -> Outcome:
        """Run one analysis to an Outcome; never raises for analysis failures."""
        tracer = self.telemetry.tracing.tracer
        attributes: dict[str, str | int] = {
            "repository.url": record.repository_url,
            "pr.number": record.pr_number or 0,
            "analysis.mode": record.requested_mode,
            "analysis.id": record.id,
        }
        run = _Run(record, on_step)
        ANALYSIS_STARTED.labels(mode=record.requested_mode).inc()
        ACTIVE_ANALYSES.inc()
        start = time.perf_counter()
        try:
            with (
                tracer.start_as_current_span("analyze-pr", attributes=attributes) as span,
                context.bind(
                    repository_url=record.repository_url,
                    user_id=record.user_id,
                    analysis_id=record.id,
                ),
                self.telemetry.resources.track("analysis", record.id) as unit,
            ):
                outcome = self._run_traced(run, span)
                trace_id = format(span.get_span_context().trace_id, "032x")
            outcome = Outcome(**{**outcome.__dict__, "trace_id": trace_id})
            return self._finish(run, outcome, unit.usage, time.perf_counter() - start)
        finally:
            ACTIVE_ANALYSES.dec()

    def _run_traced(self, run: _Run, span: Any) -> Outcome:
        log = self.telemetry.logger("orchestrator")
        log.info("analysis started", mode=run.record.requested_mode, attempt=run.record.attempts)
        try:
            findings = self._pipeline(run)
        except (AnalysisFailed, repo.RepositoryError) as exc:
            error_type = getattr(exc, "error_type", "error")
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.record_exception(exc)
            log.error("analysis failed", error=exc, error_type=error_type)
            return self._outcome(run, "failed", [], error_type=error_type, message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug fails this analysis, not the worker
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            self.telemetry.errors.capture_exception(exc, {"analysisId": run.record.id})
            return self._outcome(run, "failed", [], error_type="internal", message=str(exc))
        finally:
            self._step(run, "cleanup", lambda: self.deepwiki.release(run.record.id))
        span.set_attribute("analysis.effective_mode", run.mode or "")
        span.set_attribute("analysis.findings", len(findings))
        log.info("analysis completed", findings=len(findings), mode=run.mode)
        return self._outcome(run, "completed", findings)

    def _pipeline(self, run: _Run) -> list[Finding]:
        record = run.record
        source = self._step(
            run, "resolve-repository", lambda: repo.normalise_source(record.repository_url)
        )
        known = self._step(
            run, "check-vector-db", lambda: self.knowledge.get(record.repository_url)
        )
        state = freshness(known.analysed_at if known else None, self.clock())
        repo_dir = self._step(run, "clone", lambda: self.deepwiki.checkout(record.id, source))
        base_sha = repo.resolve(repo_dir, record.base)
        head_sha = repo.resolve(repo_dir, record.head)
        diff = self._step(run, "diff", lambda: repo.diff(repo_dir, base_sha, head_sha))
        head_dir = self._step(run, "checkout", lambda: self._trees(record.id, repo_dir, diff))
        run.profile = known.profile if known and state in ("fresh", "stale") else None
        if run.profile is None:
            run.profile = self._step(run, "trigger-deepwiki", lambda: self._deepwiki(run, head_dir))
        elif state == "stale":
            self.background(lambda: self._refresh(record.repository_url, source))
        run.mode, run.mode_reason = self._mode(run, record.requested_mode, diff)
        inp = AgentInput(head_dir, self._base_dir(record.id), diff.changed, self.agent_timeout)
        findings = self._step(run, "agents", lambda: self._agents(run, inp))
        findings = self._step(run, "aggregate", lambda: aggregate(findings))
        if run.mode == "deep":
            self._step(run, "report", lambda: self._report(run, findings, diff))
        return findings

    # -- steps ---------------------------------------------------------------------------------
    def _step(self, run: _Run, name: str, fn: Callable[[], T]) -> T:
        run.on_step(name)
        start = time.perf_counter()
        with self.telemetry.tracing.tracer.start_as_current_span(name):
            try:
                return fn()
            finally:
                run.timings[name] = run.timings.get(name, 0.0) + time.perf_counter() - start

    def _trees(self, analysis_id: str, repo_dir: Path, diff: repo.Diff) -> Path:
        self.deepwiki.tree(analysis_id, repo_dir, diff.base_sha, "base")
        return self.deepwiki.tree(analysis_id, repo_dir, diff.head_sha, "head")

    def _base_dir(self, analysis_id: str) -> Path:
        return self.deepwiki.workspace / analysis_id / "base"

    def _deepwiki(self, run: _Run, head_dir: Path) -> dict[str, Any]:
        with self.telemetry.resources.track("deepwiki", run.record.id) as unit:
            profile = profile_tree(head_dir)
            self.knowledge.put(run.record.repository_url, profile, self.clock())
        usage = unit.usage
        if usage is not None:
            disk = self.deepwiki.workspace_bytes_for(run.record.id)
            run.deepwiki_measured = Measured.from_usage(
                usage.cpu_seconds, usage.peak_memory_delta_bytes, usage.wall_seconds, disk
            )
        return profile

    def _refresh(self, repository_url: str, source: str) -> None:
        """Re-profile a stale repository in its own workspace entry."""
        refresh_id = f"refresh-{uuid.uuid4().hex[:12]}"
        try:
            repo_dir = self.deepwiki.checkout(refresh_id, source)
            head = self.deepwiki.tree(refresh_id, repo_dir, "HEAD", "head")
            self.knowledge.put(repository_url, profile_tree(head), self.clock())
        except Exception as exc:  # noqa: BLE001 - a failed refresh leaves the stale profile
            self.telemetry.errors.capture_exception(exc, {"repositoryUrl": repository_url})
        finally:
            self.deepwiki.release(refresh_id)

    def _mode(self, run: _Run, requested: str, diff: repo.Diff) -> tuple[str, str]:
        auto, reason = choose_mode(diff.changed, diff.lines_changed)
        # Kept for every analysis: cost analytics prices what `auto` would have done.
        run.diff = {
            "changedFiles": len(diff.changed),
            "linesChanged": diff.lines_changed,
            "autoMode": auto,
            "autoReason": reason,
        }
        if requested != "auto":
            return requested, f"requested {requested}"
        return auto, reason

    def _agents(self, run: _Run, inp: AgentInput) -> list[Finding]:
        found: list[Finding] = []
        for name in MODE_AGENTS[run.mode or "quick"]:
            found.extend(self._agent(run, name, inp))
        return found

    def _agent(self, run: _Run, name: str, inp: AgentInput) -> list[Finding]:
        agent = AGENTS[name]
        tracer = self.telemetry.tracing.tracer
        start = time.perf_counter()
        with tracer.start_as_current_span(f"agent {name}", attributes={"agent": name}) as span:
            try:
                return agent.run(inp)
            except AgentError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                if name == "security":  # no verdict is better than a clean-looking one
                    raise AnalysisFailed(f"agent_{type(exc).__name__}", str(exc)) from exc
                run.agent_errors[name] = f"{type(exc).__name__}: {exc}"
                self.telemetry.logger("orchestrator").warning("agent failed", agent=name, error=exc)
                return []
            finally:
                elapsed = time.perf_counter() - start
                run.timings[f"agent:{name}"] = elapsed
                AGENT_EXECUTION.labels(agent=name, provider=agent.provider).observe(elapsed)

    def _report(self, run: _Run, findings: list[Finding], diff: repo.Diff) -> None:
        if self.provider is None or self.pricing is None:
            return
        prompt = summary_prompt(run.record, findings, diff)
        try:
            done = self.provider.complete("You review pull requests concisely.", prompt)
        except ProviderError as exc:
            run.agent_errors["report"] = str(exc)
            return
        dollars, priced = self.pricing.price(done.model, done.input_tokens, done.output_tokens)
        run.llm = {
            "provider": self.provider.name,
            "model": done.model,
            "inputTokens": done.input_tokens,
            "outputTokens": done.output_tokens,
            "cost": dollars,
            "pricedFromTable": priced,
            "summary": done.text,
        }

    # -- outcome and metrics -------------------------------------------------------------------
    def _outcome(
        self,
        run: _Run,
        status: str,
        findings: list[Finding],
        *,
        error_type: str | None = None,
        message: str | None = None,
    ) -> Outcome:
        summary = {
            "counts": severity_counts(findings),
            "diff": run.diff,
            "agentErrors": run.agent_errors,
            "profile": run.profile,
            "llmSummary": run.llm["summary"] if run.llm else None,
        }
        return Outcome(
            status=status,
            mode=run.mode,
            mode_reason=run.mode_reason,
            timings=run.timings,
            cost={},
            findings=[f.to_dict() for f in findings],
            summary=summary,
            error_type=error_type,
            error_message=message,
        )

    def _finish(self, run: _Run, outcome: Outcome, usage: Any, wall: float) -> Outcome:
        measured = Measured(0.0, 0.0, 0.0)
        if usage is not None:
            measured = Measured.from_usage(
                max(usage.cpu_seconds - run.deepwiki_measured.cpu_seconds, 0.0),
                usage.peak_memory_delta_bytes,
                usage.wall_seconds,
                0,
            )
        llm = {k: v for k, v in run.llm.items() if k != "summary"} if run.llm else None
        cost = cost_breakdown(
            analysis=measured, deepwiki=run.deepwiki_measured, prices=self.prices, llm=llm
        )
        run.timings["total"] = wall
        self._observe(run, outcome, cost, wall)
        return Outcome(**{**outcome.__dict__, "cost": cost, "timings": run.timings})

    def observe_cost(self, mode: str, provider: str, total: float) -> None:
        """Record one analysis's cost, and count it if it is over CODEQUAL_ANALYSIS_COST_ALERT."""
        ANALYSIS_COST.labels(mode=mode, provider=provider).observe(total)
        if self.cost_alert is not None and total > self.cost_alert:
            ANALYSIS_COST_OVER_THRESHOLD.labels(mode=mode, provider=provider).inc()

    def _observe(self, run: _Run, outcome: Outcome, cost: dict[str, Any], wall: float) -> None:
        record = run.record
        mode = run.mode or record.requested_mode
        size = (run.profile or {}).get("sizeClass", "unknown")
        ANALYSIS_DURATION.labels(mode=mode, repository_size=size, status=outcome.status).observe(
            wall
        )
        provider = (cost.get("llm") or {}).get("provider", "none")
        self.observe_cost(mode, provider, cost["total"])
        if outcome.status == "failed":
            ANALYSIS_FAILED.labels(
                mode=record.requested_mode, error_type=outcome.error_type or "error"
            ).inc()
            return
        ANALYSIS_COMPLETED.labels(mode=record.requested_mode).inc()
        language = (run.profile or {}).get("primaryLanguage", "unknown")
        REPOSITORIES_ANALYZED.labels(
            organization=organization_label(record.repository_url), language=language
        ).inc()
        repository = repository_label(record.repository_url)
        for finding in outcome.findings:
            if finding["severity"] == "critical":
                CRITICAL_FINDINGS.labels(type=finding["rule"], repository=repository).inc()


def aggregate(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then by file and line; exact duplicates (two agents) collapse."""
    unique = {(f.severity, f.file, f.line, f.rule, f.message): f for f in findings}
    return sorted(
        unique.values(), key=lambda f: (SEVERITIES.index(f.severity), f.file, f.line or 0, f.rule)
    )


def severity_counts(findings: list[Finding]) -> dict[str, int]:
    counts = dict.fromkeys(("critical", "high", "medium", "low", "info"), 0)
    for f in findings:
        counts[f.severity] += 1
    return counts


def summary_prompt(record: AnalysisRecord, findings: list[Finding], diff: repo.Diff) -> str:
    lines = [
        f"Repository {record.repository_url}, {record.base}..{record.head}: "
        f"{len(diff.changed)} files, +{diff.lines_added}/-{diff.lines_deleted} lines.",
        "Findings:",
    ]
    lines += [f"- [{f.severity}] {f.file}:{f.line or '-'} {f.rule}: {f.message}" for f in findings]
    lines.append("Summarise the risk of merging this change in three sentences.")
    return "\n".join(lines[:200])
