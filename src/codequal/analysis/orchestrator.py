"""The plan's ``analyzePR``: knowledge store → DeepWiki → agents → aggregate → report.

Every step is a span under one ``analyze-pr`` trace, every log line in it carries the trace id,
and the catalogue metrics are updated from what really happened. An analysis ends
``completed``, ``partial`` (a report, but something was not read: see :mod:`.coverage`),
``failed`` (the service failed) or ``rejected`` (the caller's mistake: a bad ref, a repository
that cannot be reached or is refused).
"""

from __future__ import annotations

import contextvars
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.trace import Status, StatusCode

from codequal.analysis import exclude, repo
from codequal.analysis.agents import AGENTS, MODE_AGENTS, choose_mode
from codequal.analysis.agents.base import SEVERITIES, AgentInput, ChangedFile, Finding, Skip
from codequal.analysis.costs import InfraPrices, Measured, PricingTable, cost_breakdown
from codequal.analysis.coverage import Coverage
from codequal.analysis.credentials import CredentialBox, without_userinfo
from codequal.analysis.deepwiki import DeepWiki, profile_tree
from codequal.analysis.knowledge import freshness
from codequal.analysis.observe import observe_outcome
from codequal.analysis.policy import Remote, RepositoryPolicy, RepositoryRefused
from codequal.analysis.providers import LLMProvider, ProviderError
from codequal.analysis.store import AnalysisRecord, KnowledgeStore, Outcome
from codequal.analysis.supervisor import AgentProgress, AgentRun, run_agent
from codequal.exceptions import AnalysisError
from codequal.telemetry import context
from codequal.telemetry.metrics import (
    ACTIVE_ANALYSES,
    AGENT_EXECUTION,
    ANALYSIS_COST,
    ANALYSIS_COST_OVER_THRESHOLD,
    ANALYSIS_STARTED,
)
from codequal.telemetry.setup import Telemetry

StepListener = Callable[[str], None]
T = TypeVar("T")


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
    on_agent: AgentProgress | None
    deadline: float  # monotonic: when the whole analysis must end
    timings: dict[str, float] = field(default_factory=dict)
    mode: str | None = None
    mode_reason: str | None = None
    profile: dict[str, Any] | None = None
    deepwiki_measured: Measured = field(default_factory=lambda: Measured(0.0, 0.0, 0.0))
    agent_errors: dict[str, str] = field(default_factory=dict)
    llm: dict[str, Any] | None = None
    diff: dict[str, Any] | None = None  # size of the change and the mode `auto` would pick
    coverage: Coverage | None = None
    notes: list[str] = field(default_factory=list)  # what the reader should know


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
    analysis_timeout: float = 900.0
    file_timeout: float = 60.0
    exclude: tuple[str, ...] = ()
    policy: RepositoryPolicy = field(default_factory=RepositoryPolicy.permissive)
    clone_timeout: float = 300.0
    connect_timeout: float = 10.0
    credentials: CredentialBox | None = None  # opens what AnalysisService.sealed sealed
    max_parallel: int = field(default_factory=lambda: os.cpu_count() or 1)

    def run(
        self,
        record: AnalysisRecord,
        on_step: StepListener = lambda _s: None,
        on_agent: AgentProgress | None = None,
    ) -> Outcome:
        """Run one analysis to an Outcome; never raises for analysis failures."""
        tracer = self.telemetry.tracing.tracer
        attributes: dict[str, str | int] = {
            "repository.url": record.repository_url,
            "pr.number": record.pr_number or 0,
            "analysis.mode": record.requested_mode,
            "analysis.id": record.id,
        }
        run = _Run(record, on_step, on_agent, time.monotonic() + self.analysis_timeout)
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
            outcome = replace(outcome, trace_id=trace_id)
            return self._finish(run, outcome, unit.usage, time.perf_counter() - start)
        finally:
            ACTIVE_ANALYSES.dec()

    def _run_traced(self, run: _Run, span: Any) -> Outcome:
        log = self.telemetry.logger("orchestrator")
        log.info("analysis started", mode=run.record.requested_mode, attempt=run.record.attempts)
        try:
            findings = self._pipeline(run)
        except (AnalysisFailed, RepositoryRefused, repo.RepositoryError) as exc:
            error_type = getattr(exc, "error_type", "error")
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            if isinstance(exc, RepositoryRefused) or getattr(exc, "client_error", False):
                log.warning("analysis rejected", reason=error_type, detail=str(exc))
                return self._outcome(run, "rejected", [], error_type=error_type, message=str(exc))
            span.record_exception(exc)
            log.error("analysis failed", error=exc, error_type=error_type)
            return self._outcome(run, "failed", [], error_type=error_type, message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug fails this analysis, not the worker
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            self.telemetry.errors.capture_exception(exc, {"analysisId": run.record.id})
            return self._outcome(run, "failed", [], error_type="internal", message=str(exc))
        finally:
            self._step(run, "cleanup", lambda: self.deepwiki.release(run.record.id))
        gaps = self._gaps(run)
        status = "partial" if gaps else "completed"
        new = sum(1 for f in findings if f.new)
        span.set_attribute("analysis.effective_mode", run.mode or "")
        span.set_attribute("analysis.findings", new)
        log.info(f"analysis {status}", findings=new, mode=run.mode, gaps=gaps)
        return self._outcome(run, status, findings)

    def _pipeline(self, run: _Run) -> list[Finding]:
        record = run.record
        remote = self._step(run, "resolve-repository", lambda: self._remote(record))
        known = self._step(
            run, "check-vector-db", lambda: self.knowledge.get(record.repository_url)
        )
        state = freshness(known.analysed_at if known else None, self.clock())
        repo_dir = self._step(run, "clone", lambda: self._clone(run, record.id, remote))
        base_sha = repo.resolve(repo_dir, record.base)
        head_sha = repo.resolve(repo_dir, record.head)
        diff = self._step(run, "diff", lambda: repo.diff(repo_dir, base_sha, head_sha))
        head_dir = self._step(run, "checkout", lambda: self._trees(record.id, repo_dir, diff))
        run.profile = known.profile if known and state in ("fresh", "stale") else None
        if run.profile is None:
            run.profile = self._step(run, "trigger-deepwiki", lambda: self._deepwiki(run, head_dir))
        elif state == "stale":
            self.background(lambda: self._refresh(record.repository_url, remote))
        run.mode, run.mode_reason = self._mode(run, record.requested_mode, diff)
        changed, own = self._scope(run, head_dir, diff)
        inp = AgentInput(
            head_dir, self._base_dir(record.id), changed, self.agent_timeout,
            diffs=diff.files, file_timeout=self.file_timeout,
        )  # fmt: skip
        runs = self._step(run, "agents", lambda: self._agents(run, inp))
        run.coverage = Coverage.of(diff.changed, runs, own)
        findings = self._step(
            run, "aggregate", lambda: aggregate([f for r in runs for f in r.result.findings])
        )
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

    def _remote(self, record: AnalysisRecord) -> Remote:
        remote = self.policy.check(without_userinfo(record.repository_url))
        if remote.kind == "local":  # a path: say plainly when it is not a repository
            return replace(remote, source=repo.normalise_source(remote.source))
        if record.credentials is not None and self.credentials is not None:
            remote = replace(remote, credentials=self.credentials.open(record.credentials))
        return remote

    def _clone(self, run: _Run, analysis_id: str, remote: Remote) -> Path:
        budget = min(self.clone_timeout, max(1.0, run.deadline - time.monotonic()))
        return self.deepwiki.checkout(analysis_id, remote, budget, self.connect_timeout)

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

    def _refresh(self, repository_url: str, remote: Remote) -> None:
        """Re-profile a stale repository in its own workspace entry."""
        refresh_id = f"refresh-{uuid.uuid4().hex[:12]}"
        try:
            repo_dir = self.deepwiki.checkout(
                refresh_id, remote, self.clone_timeout, self.connect_timeout
            )
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
        mode, why = (auto, reason) if requested == "auto" else (requested, f"requested {requested}")
        if mode == "deep" and self.provider is None:
            note = (
                "deep mode writes its summary with an LLM and none is configured "
                "(CODEQUAL_LLM_BASE_URL), so it ran as comprehensive, without a summary"
            )
            run.notes.append(note)
            self.telemetry.logger("orchestrator").warning("deep mode without an LLM", note=note)
            return "comprehensive", f"{why}; {note}"
        return mode, why

    def _scope(
        self, run: _Run, head_dir: Path, diff: repo.Diff
    ) -> tuple[tuple[ChangedFile, ...], list[Skip]]:
        """The changed files agents read: not binary, not excluded by configuration."""
        rules = exclude.load(head_dir, self.exclude)
        if rules.problem:
            run.notes.append(rules.problem)
        keep: list[ChangedFile] = []
        own: list[Skip] = []
        for changed in diff.changed:
            file_diff = diff.files.get(changed.path)
            if rules.excludes(changed.path):
                own.append(
                    Skip(changed.path, "excluded", "matches an exclude pattern", "-", "info")
                )
            elif file_diff is not None and file_diff.binary and changed.status != "deleted":
                own.append(Skip(changed.path, "binary", "git reports binary content", "-", "info"))
            else:
                keep.append(changed)
        return tuple(keep), own

    def _agents(self, run: _Run, inp: AgentInput) -> list[AgentRun]:
        names = MODE_AGENTS[run.mode or "quick"]
        workers = max(1, min(len(names), self.max_parallel))
        with ThreadPoolExecutor(workers, thread_name_prefix="cq-agent") as pool:
            # Each agent's span and log context come from this thread's context.
            futures = [
                pool.submit(contextvars.copy_context().run, self._agent, run, name, inp)
                for name in names
            ]
            runs = [f.result() for f in futures]
        for result in runs:
            if result.name == "security" and result.error is not None:
                # no verdict is better than a clean-looking one
                error = result.error
                raise AnalysisFailed(f"agent_{type(error).__name__}", str(error))
        return runs

    def _agent(self, run: _Run, name: str, inp: AgentInput) -> AgentRun:
        agent = AGENTS[name]
        deadline = min(time.monotonic() + self.agent_timeout, run.deadline)
        budget = max(0.0, deadline - time.monotonic())
        tracer = self.telemetry.tracing.tracer
        with tracer.start_as_current_span(f"agent {name}", attributes={"agent": name}) as span:
            result = run_agent(agent, replace(inp, timeout=budget), deadline, run.on_agent)
            if result.error is not None:
                span.set_status(Status(StatusCode.ERROR, str(result.error)))
                run.agent_errors[name] = f"{type(result.error).__name__}: {result.error}"
                self.telemetry.logger("orchestrator").warning(
                    "agent failed", agent=name, error=result.error
                )
        run.timings[f"agent:{name}"] = result.seconds
        AGENT_EXECUTION.labels(agent=name, provider=agent.provider).observe(result.seconds)
        return result

    def _report(self, run: _Run, findings: list[Finding], diff: repo.Diff) -> None:
        if self.provider is None or self.pricing is None:
            return
        prompt = summary_prompt(run.record, [f for f in findings if f.new], diff)
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
    def _gaps(self, run: _Run) -> list[str]:
        gaps = run.coverage.gaps() if run.coverage is not None else []
        if "report" in run.agent_errors:
            gaps.append(f"the LLM summary could not be written: {run.agent_errors['report']}")
        return gaps

    def _outcome(
        self,
        run: _Run,
        status: str,
        findings: list[Finding],
        *,
        error_type: str | None = None,
        message: str | None = None,
    ) -> Outcome:
        new = [f for f in findings if f.new]
        summary = {
            "counts": severity_counts(new),
            "existingCounts": severity_counts([f for f in findings if not f.new]),
            "diff": run.diff,
            "agentErrors": run.agent_errors,
            "profile": run.profile,
            "llmSummary": run.llm["summary"] if run.llm else None,
            "coverage": run.coverage.to_dict() if run.coverage is not None else None,
            "partialReasons": self._gaps(run) if status == "partial" else [],
            "notes": run.notes,
        }
        return Outcome(
            status=status,
            mode=run.mode,
            mode_reason=run.mode_reason,
            timings=run.timings,
            cost={},
            findings=[f.to_record() for f in findings],
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
        mode = run.mode or run.record.requested_mode
        provider = (cost.get("llm") or {}).get("provider", "none")
        self.observe_cost(mode, provider, cost["total"])
        observe_outcome(run.record, outcome, mode, run.profile or {}, wall)
        return replace(outcome, cost=cost, timings=run.timings)

    def observe_cost(self, mode: str, provider: str, total: float) -> None:
        """Record one analysis's cost, and count it if it is over CODEQUAL_ANALYSIS_COST_ALERT."""
        ANALYSIS_COST.labels(mode=mode, provider=provider).observe(total)
        if self.cost_alert is not None and total > self.cost_alert:
            ANALYSIS_COST_OVER_THRESHOLD.labels(mode=mode, provider=provider).inc()


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
