"""Cost alerts from the settings: daily spend over ``CODEQUAL_DAILY_BUDGET`` and analyses that
cost more than ``CODEQUAL_ANALYSIS_COST_ALERT`` each.

Rule files cannot read settings, so the rules live in a template
(``default_rules/costs.template.yml``) whose placeholders are filled in here. The embedded
evaluator loads the result beside the shipped rules and ``codequal rules export`` writes it as
``codequal-costs.rules.yml``, so Prometheus alerts at the same thresholds.
"""

from __future__ import annotations

from importlib import resources

from codequal.alerting.rules import AlertingRule, RuleGroup, parse_rule_file
from codequal.config import Settings

TEMPLATE = "costs.template.yml"
RULES_FILE = "codequal-costs.rules.yml"
DAILY_BUDGET_ALERT = "DailyCostBudgetExceeded"
ANALYSIS_COST_ALERT = "AnalysisCostOverThreshold"
COST_ALERTS = (DAILY_BUDGET_ALERT, ANALYSIS_COST_ALERT)


def dollars(amount: float) -> str:
    """Money as the alert texts show it: cents, or the digits a sub-cent amount needs."""
    return f"{amount:.2f}" if amount >= 0.01 or amount == 0 else f"{amount:g}"


def template_text() -> str:
    return (resources.files("codequal.alerting") / "default_rules" / TEMPLATE).read_text(
        encoding="utf-8"
    )


def cost_rule_groups(
    daily_budget: float | None, analysis_cost_alert: float | None
) -> list[RuleGroup]:
    """The cost alerts for these thresholds; an alert whose threshold is None is left out,
    and with neither set there is no group at all."""
    if daily_budget is None and analysis_cost_alert is None:
        return []
    threshold = 1.0 if analysis_cost_alert is None else analysis_cost_alert
    budget = 0.0 if daily_budget is None else daily_budget
    text = template_text()
    for placeholder, value in (
        ("__DAILY_BUDGET__", repr(float(budget))),
        ("__DAILY_BUDGET_TEXT__", dollars(budget)),
        ("__ANALYSIS_COST_TEXT__", dollars(threshold)),
    ):
        text = text.replace(placeholder, value)
    wanted = {
        DAILY_BUDGET_ALERT: daily_budget is not None,
        ANALYSIS_COST_ALERT: analysis_cost_alert is not None,
    }
    groups = parse_rule_file(text, f"<cost alerts from {TEMPLATE}>")
    return [
        RuleGroup(
            g.name,
            tuple(r for r in g.rules if not isinstance(r, AlertingRule) or wanted[r.alert]),
            g.interval_seconds,
            g.limit,
            g.source,
        )
        for g in groups
    ]


def cost_rules_for(settings: Settings) -> list[RuleGroup]:
    """:func:`cost_rule_groups` at the configured thresholds."""
    return cost_rule_groups(settings.daily_budget, settings.analysis_cost_alert)
