"""Cost analytics: totals, breakdowns, distribution, budget checks and counterfactual savings.

Pure functions of the stored analyses (their measured cost breakdowns) and an explicit period;
nothing here is estimated from constants. The "by agent" split apportions each analysis's
infrastructure cost by its agents' share of its measured time (agents run locally, so the
infrastructure cost is what they spend).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from codequal.analysis.costs import PricingTable
from codequal.stats import percentile

DAY = 86_400.0
MONTH_DAYS = 30.0


@dataclass(frozen=True)
class CostRecord:
    analysis_id: str
    finished_at: float
    status: str
    mode: str
    repository_url: str
    cost: dict[str, Any]
    timings: dict[str, float]
    auto_mode: str | None = None

    @property
    def total(self) -> float:
        return float(self.cost.get("total") or 0.0)

    def component(self, name: str) -> float:
        return float((self.cost.get("components") or {}).get(name) or 0.0)

    @property
    def llm(self) -> dict[str, Any]:
        return self.cost.get("llm") or {}


def _sum_by(records: Iterable[CostRecord], key: Any) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for r in records:
        out[key(r)] += r.total
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def by_agent(records: Iterable[CostRecord]) -> dict[str, float]:
    """Infrastructure cost apportioned to agents by their share of each analysis's time."""
    out: dict[str, float] = defaultdict(float)
    for r in records:
        total_time = r.timings.get("total") or 0.0
        if total_time <= 0:
            continue
        infra = r.component("infrastructure")
        for step, seconds in r.timings.items():
            if step.startswith("agent:"):
                out[step.removeprefix("agent:")] += infra * seconds / total_time
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def breakdown(records: Sequence[CostRecord]) -> dict[str, Any]:
    components: dict[str, float] = defaultdict(float)
    for r in records:
        for name, value in (r.cost.get("components") or {}).items():
            components[name] += float(value)
    return {
        "total": sum(r.total for r in records),
        "byComponent": dict(components),
        "byMode": _sum_by(records, lambda r: r.mode),
        "byProvider": _sum_by(records, lambda r: r.llm.get("provider") or "none"),
        "byModel": _sum_by(records, lambda r: r.llm.get("model") or "none"),
        "byRepository": _sum_by(records, lambda r: r.repository_url),
        "byAgent": by_agent(records),
    }


def distribution(records: Sequence[CostRecord]) -> dict[str, Any]:
    totals = [r.total for r in records]
    return {
        "analyses": len(totals),
        "p50": percentile(totals, 0.5),
        "p95": percentile(totals, 0.95),
        "max": max(totals) if totals else None,
        "mean": sum(totals) / len(totals) if totals else None,
    }


def daily(records: Sequence[CostRecord], budget: float | None) -> list[dict[str, Any]]:
    """Spend per UTC day; ``overBudget`` when a daily budget is configured and exceeded."""
    days: dict[int, float] = defaultdict(float)
    for r in records:
        days[int(r.finished_at // DAY)] += r.total
    return [
        {
            "day": day * DAY,
            "spend": spend,
            "overBudget": budget is not None and spend > budget,
        }
        for day, spend in sorted(days.items())
    ]


def over_threshold(records: Sequence[CostRecord], threshold: float | None) -> list[dict[str, Any]]:
    if threshold is None:
        return []
    return [
        {"id": r.analysis_id, "cost": r.total, "mode": r.mode, "repositoryUrl": r.repository_url}
        for r in records
        if r.total > threshold
    ]


def suggestions(
    records: Sequence[CostRecord], period_seconds: float, pricing: PricingTable | None
) -> list[dict[str, Any]]:
    """Counterfactuals on the real records, each with its projected monthly saving."""
    found = [s for s in (_deep_to_quick(records, period_seconds), _cheaper_model(
        records, period_seconds, pricing)) if s is not None]  # fmt: skip
    return sorted(found, key=lambda s: -s["projectedMonthlySaving"])


def _monthly(saving: float, period_seconds: float) -> float:
    return saving * (MONTH_DAYS * DAY) / period_seconds if period_seconds > 0 else 0.0


def _deep_to_quick(records: Sequence[CostRecord], period: float) -> dict[str, Any] | None:
    """Deep analyses whose diff `auto` would have run in quick mode, at quick's median cost."""
    quick = [r.total for r in records if r.mode == "quick" and r.status == "completed"]
    movable = [r for r in records if r.mode == "deep" and r.auto_mode == "quick"]
    median_quick = percentile(quick, 0.5)
    if not movable or median_quick is None:
        return None
    saving = sum(max(r.total - median_quick, 0.0) for r in movable)
    if saving <= 0:
        return None
    return {
        "action": "Route small pull requests with `auto` instead of `deep`",
        "detail": (
            f"{len(movable)} deep analyses had diffs that auto mode would have run as quick; "
            f"re-priced at the median quick analysis (${median_quick:.4f}) they would have "
            f"cost ${saving:.4f} less in this period"
        ),
        "analyses": len(movable),
        "periodSaving": saving,
        "projectedMonthlySaving": _monthly(saving, period),
    }


def _cheaper_model(
    records: Sequence[CostRecord], period: float, pricing: PricingTable | None
) -> dict[str, Any] | None:
    """The recorded summary tokens re-priced with the cheapest known model of the same family."""
    if pricing is None:
        return None
    best: dict[str, Any] | None = None
    for model, uses in _llm_uses(records).items():
        family = model.split("-")[0]
        candidates = [m for m in pricing.models if m.split("-")[0] == family and m != model]
        for candidate in candidates:
            now_cost = sum(pricing.price(model, i, o)[0] for i, o in uses)
            alt_cost = sum(pricing.price(candidate, i, o)[0] for i, o in uses)
            saving = now_cost - alt_cost
            if saving > 0 and (best is None or saving > best["periodSaving"]):
                best = {
                    "action": f"Use {candidate} instead of {model} for the summary step",
                    "detail": (
                        f"{len(uses)} summaries used {model} for ${now_cost:.4f}; the same "
                        f"tokens on {candidate} cost ${alt_cost:.4f}"
                    ),
                    "analyses": len(uses),
                    "periodSaving": saving,
                    "projectedMonthlySaving": _monthly(saving, period),
                }
    return best


def _llm_uses(records: Iterable[CostRecord]) -> dict[str, list[tuple[int, int]]]:
    uses: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in records:
        llm = r.llm
        if llm.get("model"):
            uses[str(llm["model"])].append(
                (int(llm.get("inputTokens", 0)), int(llm.get("outputTokens", 0)))
            )
    return uses


def cost_report(
    records: Sequence[CostRecord],
    *,
    start: float,
    end: float,
    daily_budget: float | None,
    analysis_threshold: float | None,
    pricing: PricingTable | None,
) -> dict[str, Any]:
    """Everything `/api/monitoring/costs` and `codequal costs` show for one period."""
    return {
        "period": {"start": start, "end": end},
        "currency": "USD",
        **breakdown(records),
        "perAnalysis": distribution(records),
        "daily": daily(records, daily_budget),
        "dailyBudget": daily_budget,
        "overThreshold": over_threshold(records, analysis_threshold),
        "analysisCostThreshold": analysis_threshold,
        "suggestions": suggestions(records, end - start, pricing),
    }
