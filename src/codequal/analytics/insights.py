"""Performance insights from stored analyses and span trees, with rule-based recommendations.

Every number is computed from the records of the period (their counts and percentiles,
aggregated by the database or, equivalently, by ``InsightTotals.of``); each recommendation
is a rule over those numbers and quotes them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from codequal.analytics.stats import percentile


@dataclass(frozen=True)
class AnalysisFacts:
    analysis_id: str
    status: str
    mode: str
    repository_url: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    timings: dict[str, float]
    size_class: str | None


@dataclass(frozen=True)
class SpanFacts:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class Spread:
    """How many values, and their median and 95th percentile."""

    count: int
    p50: float | None
    p95: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(len(values), percentile(values, 0.5), percentile(values, 0.95))


@dataclass(frozen=True)
class InsightTotals:
    """A period's counts and order statistics: everything the report is computed from.

    ``storage.analytics_totals`` builds it with SQL; ``of`` builds the same from facts.
    """

    analyses: int
    analysis_seconds: float  # the analyses' summed total time
    agents: dict[str, tuple[Spread, float]]  # agent -> (run times, summed seconds)
    knowledge: Spread  # knowledge-store lookup latencies
    knowledge_misses: int  # lookups followed by a DeepWiki run
    clone_by_size: dict[str, Spread]
    queue_wait: Spread
    deepwiki_runs: dict[str, int]  # per repository

    @classmethod
    def of(cls, analyses: Sequence[AnalysisFacts]) -> InsightTotals:
        per_agent: dict[str, list[float]] = defaultdict(list)
        by_size: dict[str, list[float]] = defaultdict(list)
        for a in analyses:
            for step, seconds in a.timings.items():
                if step.startswith("agent:"):
                    per_agent[step.removeprefix("agent:")].append(seconds)
            if "clone" in a.timings:
                by_size[a.size_class or "unknown"].append(a.timings["clone"])
        checked = [a for a in analyses if "check-vector-db" in a.timings]
        return cls(
            analyses=len(analyses),
            analysis_seconds=sum(a.timings.get("total") or 0.0 for a in analyses),
            agents={name: (Spread.of(v), sum(v)) for name, v in per_agent.items()},
            knowledge=Spread.of([a.timings["check-vector-db"] for a in checked]),
            knowledge_misses=sum(1 for a in checked if "trigger-deepwiki" in a.timings),
            clone_by_size={size: Spread.of(v) for size, v in by_size.items()},
            queue_wait=Spread.of(
                [a.started_at - a.created_at for a in analyses if a.started_at is not None]
            ),
            deepwiki_runs=reanalysed_repositories(analyses),
        )


def slowest_agents(totals: InsightTotals) -> list[dict[str, Any]]:
    total_time = totals.analysis_seconds
    rows = [
        {
            "agent": name,
            "runs": spread.count,
            "p50": spread.p50,
            "p95": spread.p95,
            "shareOfAnalysisTime": seconds / total_time if total_time else None,
        }
        for name, (spread, seconds) in totals.agents.items()
    ]
    return sorted(rows, key=lambda r: -(r["p95"] or 0.0))


def critical_path(spans: Sequence[SpanFacts]) -> dict[str, float]:
    """Seconds each span name spends on the critical path of its trace (children first).

    Walking back from the root's end: the child that ended last before the cursor is on the
    path; the cursor then moves to that child's start. Time not covered by a child is the
    parent's own.
    """
    children: dict[str | None, list[SpanFacts]] = defaultdict(list)
    for s in spans:
        children[s.parent_span_id].append(s)
    out: dict[str, float] = defaultdict(float)
    for root in children.get(None, []):
        _walk(root, children, out)
    return dict(out)


def _walk(
    span: SpanFacts, children: dict[str | None, list[SpanFacts]], out: dict[str, float]
) -> None:
    cursor = span.end
    own = 0.0
    for child in sorted(children.get(span.span_id, []), key=lambda c: -c.end):
        if child.end > cursor:
            continue  # overlaps a later child already on the path
        own += cursor - child.end
        _walk(child, children, out)
        cursor = child.start
    own += max(cursor - span.start, 0.0)
    out[span.name] += own


def bottlenecks(spans: Sequence[SpanFacts]) -> list[dict[str, Any]]:
    path = critical_path(spans)
    total = sum(path.values())
    rows = [
        {"step": name, "criticalPathSeconds": seconds, "share": seconds / total if total else None}
        for name, seconds in path.items()
    ]
    return sorted(rows, key=lambda r: -r["criticalPathSeconds"])


def knowledge_cache(totals: InsightTotals) -> dict[str, Any]:
    """A DeepWiki run means the knowledge store had no fresh profile: a miss."""
    lookups, misses = totals.knowledge.count, totals.knowledge_misses
    return {
        "lookups": lookups,
        "hits": lookups - misses,
        "misses": misses,
        "hitRate": (lookups - misses) / lookups if lookups else None,
        "latencyP50": totals.knowledge.p50,
        "latencyP95": totals.knowledge.p95,
    }


def clone_time_by_size(totals: InsightTotals) -> dict[str, dict[str, Any]]:
    return {
        size: {"clones": spread.count, "p50": spread.p50, "p95": spread.p95}
        for size, spread in sorted(totals.clone_by_size.items())
    }


def queue_wait(totals: InsightTotals) -> dict[str, Any]:
    wait = totals.queue_wait
    return {"analyses": wait.count, "p50": wait.p50, "p95": wait.p95}


def reanalysed_repositories(analyses: Iterable[AnalysisFacts]) -> dict[str, int]:
    """DeepWiki runs per repository in the period."""
    runs: dict[str, int] = defaultdict(int)
    for a in analyses:
        if "trigger-deepwiki" in a.timings:
            runs[a.repository_url] += 1
    return dict(runs)


def recommendations(report: dict[str, Any]) -> list[str]:
    """Rules over the computed numbers; each message quotes the numbers that fired it."""
    out: list[str] = []
    for agent in report["slowestAgents"]:
        share = agent["shareOfAnalysisTime"] or 0.0
        if share >= 0.30 and agent["runs"] >= 5:
            out.append(
                f"{agent['agent']} agent takes {share:.0%} of analysis time "
                f"(p95 {agent['p95']:.2f} s) — run it in parallel with the other agents"
            )
    cache = report["knowledgeCache"]
    if cache["hitRate"] is not None and cache["lookups"] >= 10 and cache["hitRate"] < 0.5:
        out.append(
            f"knowledge store hit rate is {cache['hitRate']:.0%} over {cache['lookups']} "
            "analyses — keep repository profiles longer or pre-warm busy repositories"
        )
    repeated = {k: v for k, v in report["deepwikiRuns"].items() if v >= 3}
    if repeated:
        runs = sum(repeated.values())
        out.append(
            f"{len(repeated)} repositories were re-analysed by DeepWiki {runs} times in this "
            "period — cache their profiles for 7 days"
        )
    wait = report["queueWait"]
    if wait["p95"] is not None and wait["p95"] > 60:
        out.append(
            f"queue wait p95 is {wait['p95']:.0f} s — raise CODEQUAL_MAX_CONCURRENT_ANALYSES "
            "or add a replica"
        )
    for step in report["bottlenecks"][:1]:
        if step["share"] and step["share"] >= 0.5 and step["step"] != "analyze-pr":
            out.append(
                f"{step['step']} is {step['share']:.0%} of the critical path "
                f"({step['criticalPathSeconds']:.1f} s in the period) — the first place to optimise"
            )
    return out


def insights_report(
    analyses: Sequence[AnalysisFacts] | InsightTotals,
    spans: Sequence[SpanFacts],
    *,
    start: float,
    end: float,
) -> dict[str, Any]:
    """Everything `/api/monitoring/insights` and `codequal insights` show for one period.

    ``analyses`` may already be the period's ``InsightTotals``, which is how the service
    reads them: aggregated by the database.
    """
    totals = analyses if isinstance(analyses, InsightTotals) else InsightTotals.of(analyses)
    report: dict[str, Any] = {
        "period": {"start": start, "end": end},
        "analyses": totals.analyses,
        "slowestAgents": slowest_agents(totals),
        "bottlenecks": bottlenecks(spans),
        "knowledgeCache": knowledge_cache(totals),
        "cloneTimeBySize": clone_time_by_size(totals),
        "queueWait": queue_wait(totals),
        # Most re-analysed first (the rows came in storage order before).
        "deepwikiRuns": dict(sorted(totals.deepwiki_runs.items(), key=lambda kv: (-kv[1], kv[0]))),
    }
    report["recommendations"] = recommendations(report)
    return report
