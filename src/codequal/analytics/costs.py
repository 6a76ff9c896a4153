"""Cost analytics: totals, breakdowns, distribution, budget checks and counterfactual savings.

Pure functions of a period's cost totals (sums of the stored analyses' measured cost
breakdowns) and an explicit period; nothing here is estimated from constants. The totals come
from SQL (``storage.analytics_totals``) or, equivalently, from records (``CostTotals.of``).
The "by agent" split apportions each analysis's infrastructure cost by its agents' share of
its measured time (agents run locally, so the infrastructure cost is what they spend).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from codequal.analysis.costs import PricingTable
from codequal.analytics.stats import percentile

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


@dataclass(frozen=True)
class LlmUse:
    """The summaries one model wrote in the period, and their tokens."""

    analyses: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class CostTotals:
    """A period's sums and order statistics: everything the report is computed from.

    The ``by_*`` maps are unordered (the report sorts them by spend); ``over_threshold``
    holds the analyses above the threshold the totals were built for.
    """

    analyses: int
    total: float
    by_component: dict[str, float]
    by_mode: dict[str, float]
    by_provider: dict[str, float]
    by_model: dict[str, float]
    by_repository: dict[str, float]
    by_agent: dict[str, float]
    p50: float | None
    p95: float | None
    max: float | None
    daily: dict[int, float]  # UTC day number -> spend
    over_threshold: list[dict[str, Any]]
    quick_median: float | None  # of the completed quick analyses
    movable: int  # deep analyses that auto mode would have run as quick
    movable_saving: float  # what they cost above quick_median
    llm_uses: dict[str, LlmUse]

    @classmethod
    def of(cls, records: Sequence[CostRecord], threshold: float | None) -> CostTotals:
        """The totals of ``records`` (the reference the SQL aggregation is tested against)."""
        totals = [r.total for r in records]
        quick = [r.total for r in records if r.mode == "quick" and r.status == "completed"]
        median = percentile(quick, 0.5)
        movable = [r.total for r in records if r.mode == "deep" and r.auto_mode == "quick"]
        return cls(
            analyses=len(records),
            total=sum(totals),
            by_component=_components(records),
            by_mode=_sum_by(records, lambda r: r.mode),
            by_provider=_sum_by(records, lambda r: r.llm.get("provider") or "none"),
            by_model=_sum_by(records, lambda r: r.llm.get("model") or "none"),
            by_repository=_sum_by(records, lambda r: r.repository_url),
            by_agent=by_agent(records),
            p50=percentile(totals, 0.5),
            p95=percentile(totals, 0.95),
            max=max(totals) if totals else None,
            daily=_sum_by(records, lambda r: int(r.finished_at // DAY)),
            over_threshold=[
                _over(r) for r in records if threshold is not None and r.total > threshold
            ],
            quick_median=median,
            movable=len(movable),
            movable_saving=0.0 if median is None else sum(max(t - median, 0.0) for t in movable),
            llm_uses=_llm_uses(records),
        )


def _over(r: CostRecord) -> dict[str, Any]:
    return {"id": r.analysis_id, "cost": r.total, "mode": r.mode, "repositoryUrl": r.repository_url}


def _sum_by(records: Iterable[CostRecord], key: Callable[[CostRecord], Any]) -> dict[Any, float]:
    out: dict[Any, float] = defaultdict(float)
    for r in records:
        out[key(r)] += r.total
    return dict(out)


def _components(records: Iterable[CostRecord]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for r in records:
        for name, value in (r.cost.get("components") or {}).items():
            out[name] += float(value)
    return dict(out)


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
    return dict(out)


def _llm_uses(records: Iterable[CostRecord]) -> dict[str, LlmUse]:
    uses: dict[str, LlmUse] = {}
    for r in records:
        model = r.llm.get("model")
        if model:
            seen = uses.get(str(model), LlmUse(0, 0, 0))
            uses[str(model)] = LlmUse(
                seen.analyses + 1,
                seen.input_tokens + int(r.llm.get("inputTokens", 0)),
                seen.output_tokens + int(r.llm.get("outputTokens", 0)),
            )
    return uses


def _by_spend(amounts: dict[str, float]) -> dict[str, float]:
    return dict(sorted(amounts.items(), key=lambda kv: -kv[1]))


def breakdown(totals: CostTotals) -> dict[str, Any]:
    return {
        "total": totals.total,
        "byComponent": totals.by_component,
        "byMode": _by_spend(totals.by_mode),
        "byProvider": _by_spend(totals.by_provider),
        "byModel": _by_spend(totals.by_model),
        "byRepository": _by_spend(totals.by_repository),
        "byAgent": _by_spend(totals.by_agent),
    }


def distribution(totals: CostTotals) -> dict[str, Any]:
    return {
        "analyses": totals.analyses,
        "p50": totals.p50,
        "p95": totals.p95,
        "max": totals.max,
        "mean": totals.total / totals.analyses if totals.analyses else None,
    }


def daily(totals: CostTotals, budget: float | None) -> list[dict[str, Any]]:
    """Spend per UTC day; ``overBudget`` when a daily budget is configured and exceeded."""
    return [
        {
            "day": day * DAY,
            "spend": spend,
            "overBudget": budget is not None and spend > budget,
        }
        for day, spend in sorted(totals.daily.items())
    ]


def suggestions(
    totals: CostTotals, period_seconds: float, pricing: PricingTable | None
) -> list[dict[str, Any]]:
    """Counterfactuals on the real records, each with its projected monthly saving."""
    found = [s for s in (_deep_to_quick(totals, period_seconds), _cheaper_model(
        totals, period_seconds, pricing)) if s is not None]  # fmt: skip
    return sorted(found, key=lambda s: -s["projectedMonthlySaving"])


def _monthly(saving: float, period_seconds: float) -> float:
    return saving * (MONTH_DAYS * DAY) / period_seconds if period_seconds > 0 else 0.0


def _deep_to_quick(totals: CostTotals, period: float) -> dict[str, Any] | None:
    """Deep analyses whose diff `auto` would have run in quick mode, at quick's median cost."""
    median_quick, saving = totals.quick_median, totals.movable_saving
    if not totals.movable or median_quick is None or saving <= 0:
        return None
    return {
        "action": "Route small pull requests with `auto` instead of `deep`",
        "detail": (
            f"{totals.movable} deep analyses had diffs that auto mode would have run as quick; "
            f"re-priced at the median quick analysis (${median_quick:.4f}) they would have "
            f"cost ${saving:.4f} less in this period"
        ),
        "analyses": totals.movable,
        "periodSaving": saving,
        "projectedMonthlySaving": _monthly(saving, period),
    }


def _cheaper_model(
    totals: CostTotals, period: float, pricing: PricingTable | None
) -> dict[str, Any] | None:
    """The recorded summary tokens re-priced with the cheapest known model of the same family.

    Prices are per token, so pricing the period's summed tokens is pricing each summary.
    """
    if pricing is None:
        return None
    best: dict[str, Any] | None = None
    for model, uses in totals.llm_uses.items():
        family = model.split("-")[0]
        candidates = [m for m in pricing.models if m.split("-")[0] == family and m != model]
        for candidate in candidates:
            now_cost = pricing.price(model, uses.input_tokens, uses.output_tokens)[0]
            alt_cost = pricing.price(candidate, uses.input_tokens, uses.output_tokens)[0]
            saving = now_cost - alt_cost
            if saving > 0 and (best is None or saving > best["periodSaving"]):
                best = {
                    "action": f"Use {candidate} instead of {model} for the summary step",
                    "detail": (
                        f"{uses.analyses} summaries used {model} for ${now_cost:.4f}; the same "
                        f"tokens on {candidate} cost ${alt_cost:.4f}"
                    ),
                    "analyses": uses.analyses,
                    "periodSaving": saving,
                    "projectedMonthlySaving": _monthly(saving, period),
                }
    return best


def cost_report(
    records: Sequence[CostRecord] | CostTotals,
    *,
    start: float,
    end: float,
    daily_budget: float | None,
    analysis_threshold: float | None,
    pricing: PricingTable | None,
) -> dict[str, Any]:
    """Everything `/api/monitoring/costs` and `codequal costs` show for one period.

    ``records`` may already be the period's ``CostTotals`` (built for ``analysis_threshold``),
    which is how the service reads them: aggregated by the database.
    """
    totals = records if isinstance(records, CostTotals) else CostTotals.of(
        records, analysis_threshold)  # fmt: skip
    return {
        "period": {"start": start, "end": end},
        "currency": "USD",
        **breakdown(totals),
        "perAnalysis": distribution(totals),
        "daily": daily(totals, daily_budget),
        "dailyBudget": daily_budget,
        "overThreshold": totals.over_threshold if analysis_threshold is not None else [],
        "analysisCostThreshold": analysis_threshold,
        "suggestions": suggestions(totals, end - start, pricing),
    }
