"""Performance insights from stored analyses and span trees, with rule-based recommendations.

Every number is computed from the records of the period; each recommendation is a rule over
those numbers and quotes them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from codequal.stats import percentile


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


def slowest_agents(analyses: Sequence[AnalysisFacts]) -> list[dict[str, Any]]:
    per_agent: dict[str, list[float]] = defaultdict(list)
    agent_time = total_time = 0.0
    shares: dict[str, float] = defaultdict(float)
    for a in analyses:
        total = a.timings.get("total") or 0.0
        total_time += total
        for step, seconds in a.timings.items():
            if step.startswith("agent:"):
                name = step.removeprefix("agent:")
                per_agent[name].append(seconds)
                shares[name] += seconds
                agent_time += seconds
    rows = [
        {
            "agent": name,
            "runs": len(values),
            "p50": percentile(values, 0.5),
            "p95": percentile(values, 0.95),
            "shareOfAnalysisTime": shares[name] / total_time if total_time else None,
        }
        for name, values in per_agent.items()
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


def knowledge_cache(analyses: Sequence[AnalysisFacts]) -> dict[str, Any]:
    """A DeepWiki run means the knowledge store had no fresh profile: a miss."""
    checked = [a for a in analyses if "check-vector-db" in a.timings]
    misses = sum(1 for a in checked if "trigger-deepwiki" in a.timings)
    latencies = [a.timings["check-vector-db"] for a in checked]
    return {
        "lookups": len(checked),
        "hits": len(checked) - misses,
        "misses": misses,
        "hitRate": (len(checked) - misses) / len(checked) if checked else None,
        "latencyP50": percentile(latencies, 0.5),
        "latencyP95": percentile(latencies, 0.95),
    }


def clone_time_by_size(analyses: Sequence[AnalysisFacts]) -> dict[str, dict[str, Any]]:
    by_size: dict[str, list[float]] = defaultdict(list)
    for a in analyses:
        if "clone" in a.timings:
            by_size[a.size_class or "unknown"].append(a.timings["clone"])
    return {
        size: {"clones": len(v), "p50": percentile(v, 0.5), "p95": percentile(v, 0.95)}
        for size, v in sorted(by_size.items())
    }


def queue_wait(analyses: Sequence[AnalysisFacts]) -> dict[str, Any]:
    waits = [a.started_at - a.created_at for a in analyses if a.started_at is not None]
    return {"analyses": len(waits), "p50": percentile(waits, 0.5), "p95": percentile(waits, 0.95)}


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
    analyses: Sequence[AnalysisFacts], spans: Sequence[SpanFacts], *, start: float, end: float
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "period": {"start": start, "end": end},
        "analyses": len(analyses),
        "slowestAgents": slowest_agents(analyses),
        "bottlenecks": bottlenecks(spans),
        "knowledgeCache": knowledge_cache(analyses),
        "cloneTimeBySize": clone_time_by_size(analyses),
        "queueWait": queue_wait(analyses),
        "deepwikiRuns": reanalysed_repositories(analyses),
    }
    report["recommendations"] = recommendations(report)
    return report
