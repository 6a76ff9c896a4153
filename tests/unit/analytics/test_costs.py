"""Cost analytics: breakdowns that sum to the total, budgets, and counterfactual savings."""

from __future__ import annotations

import pytest

from codequal.analysis.costs import ModelPrice, PricingTable
from codequal.analytics.costs import DAY, CostRecord, cost_report

PRICING = PricingTable(
    {"gpt-4o": ModelPrice(2.5, 10.0), "gpt-4o-mini": ModelPrice(0.15, 0.6)},
    ModelPrice(10.0, 30.0),
)


def record(i: int, mode: str, total_infra: float, *, auto: str | None = None,
           llm: dict | None = None, day: int = 0, repo: str = "r1") -> CostRecord:  # fmt: skip
    llm_cost = llm["cost"] if llm else 0.0
    cost = {
        "total": total_infra + 0.001 + llm_cost,
        "components": {"infrastructure": total_infra, "deepwiki": 0.001, "llm": llm_cost},
        "llm": llm,
    }
    timings = {"total": 10.0, "agent:security": 6.0, "agent:codeQuality": 2.0}
    return CostRecord(f"a{i}", day * DAY + 100.0 + i, "completed", mode, repo, cost, timings, auto)


def report(records: list[CostRecord], **kw: object) -> dict:
    return cost_report(records, start=0.0, end=7 * DAY, daily_budget=kw.get("budget"),  # type: ignore[arg-type]
                       analysis_threshold=kw.get("threshold"), pricing=PRICING)  # type: ignore[arg-type]  # fmt: skip


def test_every_breakdown_sums_to_the_total() -> None:
    llm = {"provider": "openai-compatible", "model": "gpt-4o", "inputTokens": 1000,
           "outputTokens": 500, "cost": 0.0075}  # fmt: skip
    records = [record(0, "quick", 0.01), record(1, "deep", 0.05, llm=llm, repo="r2"),
               record(2, "comprehensive", 0.02, day=1)]  # fmt: skip
    body = report(records)
    total = body["total"]
    assert total == pytest.approx(0.01 + 0.05 + 0.02 + 3 * 0.001 + 0.0075)
    for key in ("byComponent", "byMode", "byProvider", "byModel", "byRepository"):
        assert sum(body[key].values()) == pytest.approx(total), key
    assert sum(d["spend"] for d in body["daily"]) == pytest.approx(total)
    assert body["byProvider"] == pytest.approx({"openai-compatible": 0.0585, "none": 0.032})


def test_agent_share_apportions_infrastructure_by_measured_time() -> None:
    body = report([record(0, "quick", 0.10)])
    assert body["byAgent"] == pytest.approx({"security": 0.06, "codeQuality": 0.02})


def test_distribution_budget_and_threshold_flags() -> None:
    records = [record(i, "quick", 0.01 * (i + 1)) for i in range(5)]
    body = report(records, budget=0.05, threshold=0.04)
    assert body["perAnalysis"]["analyses"] == 5
    assert body["perAnalysis"]["max"] == pytest.approx(0.051)
    assert body["perAnalysis"]["p50"] == pytest.approx(0.031)
    assert [d["overBudget"] for d in body["daily"]] == [True]
    assert [r["id"] for r in body["overThreshold"]] == ["a3", "a4"]


def test_deep_analyses_that_auto_would_run_quick_are_repriced_at_the_quick_median() -> None:
    quick = [record(i, "quick", 0.01) for i in range(3)]
    deep = [record(10 + i, "deep", 0.09, auto="quick") for i in range(2)]
    deep_needed = [record(20, "deep", 0.09, auto="deep")]
    body = report(quick + deep + deep_needed)
    (suggestion,) = [s for s in body["suggestions"] if "auto" in s["action"]]
    assert suggestion["analyses"] == 2
    assert suggestion["periodSaving"] == pytest.approx(2 * (0.091 - 0.011))
    assert suggestion["projectedMonthlySaving"] == pytest.approx(2 * 0.08 * 30 / 7)
    assert "2 deep analyses" in suggestion["detail"]


def test_cheaper_model_of_the_same_family_is_suggested_with_the_token_maths() -> None:
    llm = {"provider": "openai-compatible", "model": "gpt-4o", "inputTokens": 1_000_000,
           "outputTokens": 100_000, "cost": 3.5}  # fmt: skip
    body = report([record(0, "deep", 0.01, llm=llm)])
    (suggestion,) = [s for s in body["suggestions"] if "gpt-4o-mini" in s["action"]]
    assert suggestion["periodSaving"] == pytest.approx(3.5 - (0.15 + 0.06))
