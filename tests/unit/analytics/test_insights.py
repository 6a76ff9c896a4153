"""Insights: agent shares, critical path through span trees, cache, queue, recommendations."""

from __future__ import annotations

import pytest

from codequal.analytics.insights import AnalysisFacts, SpanFacts, critical_path, insights_report


def facts(i: int, *, deepwiki: bool = False, wait: float = 1.0, repo: str = "r") -> AnalysisFacts:
    timings = {"total": 10.0, "agent:security": 5.0, "agent:codeQuality": 1.0,
               "check-vector-db": 0.01, "clone": 0.5}  # fmt: skip
    if deepwiki:
        timings["trigger-deepwiki"] = 2.0
    return AnalysisFacts(f"a{i}", "completed", "quick", repo, 100.0, 100.0 + wait, 120.0, timings,
                         "small")  # fmt: skip


def test_critical_path_skips_a_child_that_overlaps_a_later_one() -> None:
    spans = [
        SpanFacts("t", "root", None, "analyze-pr", 0.0, 10.0),
        SpanFacts("t", "a", "root", "clone", 0.0, 2.0),
        SpanFacts("t", "b", "root", "agents", 3.0, 9.0),
        SpanFacts("t", "c", "b", "agent security", 3.0, 8.0),
        SpanFacts("t", "d", "b", "agent codeQuality", 4.0, 5.0),  # parallel, not critical
    ]
    path = critical_path(spans)
    assert path == pytest.approx(
        {"analyze-pr": 2.0, "clone": 2.0, "agents": 1.0, "agent security": 5.0}
    )
    assert sum(path.values()) == pytest.approx(10.0)


def test_report_numbers_and_recommendations_quote_them() -> None:
    analyses = [facts(i, deepwiki=i < 4, wait=90.0 if i == 0 else 1.0) for i in range(10)]
    body = insights_report(analyses, [], start=0.0, end=1000.0)
    security = body["slowestAgents"][0]
    assert security["agent"] == "security" and security["shareOfAnalysisTime"] == 0.5
    assert body["knowledgeCache"]["hitRate"] == 0.6
    assert body["deepwikiRuns"] == {"r": 4}
    text = "\n".join(body["recommendations"])
    assert "security agent takes 50% of analysis time (p95 5.00 s)" in text
    assert "re-analysed by DeepWiki 4 times" in text
