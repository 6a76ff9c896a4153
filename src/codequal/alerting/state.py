"""Evaluation state: what rule evaluation carries from one run to the next.

Frozen records, keyed the way the evaluator looks them up (groups by ``file;name``, alerts by
label fingerprint), with a JSON form so the scheduler can persist the state and a restart
neither forgets a firing alert nor pages for it again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from codequal.alerting.model import Alert, AlertStatus
from codequal.alerting.rules import AlertingRule, RuleGroup, rule_key
from codequal.tsdb.promql import Labels

STATE_VERSION = 1


@dataclass(frozen=True)
class ActiveAlert:
    """An alert held by a rule, with what Prometheus tracks beside it."""

    alert: Alert
    rule: str  # rule_key() of the rule that owns it
    keep_firing_since: float | None = None  # when its series vanished while firing


@dataclass(frozen=True)
class GroupState:
    """One group after its last evaluation."""

    last_evaluation: float | None = None  # Unix seconds
    alerts: Mapping[str, ActiveAlert] = field(default_factory=dict)  # by fingerprint
    series: Mapping[str, tuple[Labels, ...]] = field(default_factory=dict)  # by rule key
    errors: Mapping[str, str] = field(default_factory=dict)  # by rule key: the last error


@dataclass(frozen=True)
class EvaluationState:
    """Everything evaluation carries from one run to the next, by group key."""

    groups: Mapping[str, GroupState] = field(default_factory=dict)

    def alerts(self) -> list[Alert]:
        """Every alert held in state: pending, firing, and recently resolved."""
        return [a.alert for g in self.groups.values() for a in g.alerts.values()]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form; :meth:`from_json` restores an equal state."""
        return {
            "version": STATE_VERSION,
            "groups": {key: _group_out(g) for key, g in self.groups.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown evaluation state version {data.get('version')!r}")
        groups = cast(Mapping[str, Mapping[str, Any]], data.get("groups", {}))
        return cls({key: _group_in(g) for key, g in groups.items()})


def rules_overview(groups: Sequence[RuleGroup], state: EvaluationState) -> list[dict[str, Any]]:
    """Each rule with its health and state, in the spirit of Prometheus's ``/api/v1/rules``
    (for ``/api/monitoring/alerts/rules``); times are Unix seconds."""
    out = []
    for group in groups:
        held = state.groups.get(group.key, GroupState())
        for rule in group.rules:
            key = rule_key(rule)
            alerts = [a.alert for a in held.alerts.values() if a.rule == key]
            error = held.errors.get(key)
            row: dict[str, Any] = {
                "group": group.name,
                "file": group.source,
                "name": rule.name,
                "type": "alerting" if isinstance(rule, AlertingRule) else "recording",
                "query": rule.expr,
                "labels": dict(rule.labels),
                "health": "unknown" if held.last_evaluation is None else "err" if error else "ok",
                "lastError": error or "",
                "lastEvaluation": held.last_evaluation,
            }
            if isinstance(rule, AlertingRule):
                row |= {
                    "duration": rule.for_seconds,
                    "keepFiringFor": rule.keep_firing_for_seconds,
                    "annotations": dict(rule.annotations),
                    "state": _rule_state(alerts),
                    "alerts": alerts,
                }
            out.append(row)
    return out


def _rule_state(alerts: Sequence[Alert]) -> str:
    statuses = {a.status for a in alerts}
    return "firing" if "firing" in statuses else "pending" if "pending" in statuses else "inactive"


def _group_out(group: GroupState) -> dict[str, Any]:
    return {
        "last_evaluation": group.last_evaluation,
        "alerts": [_active_out(a) for a in group.alerts.values()],
        "series": {
            key: [list(map(list, labels)) for labels in s] for key, s in group.series.items()
        },
        "errors": dict(group.errors),
    }


def _group_in(data: Mapping[str, Any]) -> GroupState:
    alerts = [_active_in(a) for a in data.get("alerts", [])]
    series = {
        key: tuple(Labels.of(map(tuple, labels)) for labels in items)
        for key, items in data.get("series", {}).items()
    }
    return GroupState(
        data.get("last_evaluation"),
        {a.alert.fingerprint: a for a in alerts},
        series,
        dict(data.get("errors", {})),
    )


def _active_out(active: ActiveAlert) -> dict[str, Any]:
    a = active.alert
    return {
        "labels": a.labels,
        "annotations": a.annotations,
        "status": a.status,
        "active_at": a.active_at,
        "fired_at": a.fired_at,
        "resolved_at": a.resolved_at,
        "value": _float_out(a.value),
        "generator_url": a.generator_url,
        "rule": active.rule,
        "keep_firing_since": active.keep_firing_since,
    }


def _active_in(data: Mapping[str, Any]) -> ActiveAlert:
    alert = Alert(
        labels=dict(data["labels"]),
        annotations=dict(data["annotations"]),
        status=cast(AlertStatus, data["status"]),
        active_at=data["active_at"],
        fired_at=data.get("fired_at"),
        resolved_at=data.get("resolved_at"),
        value=_float_in(data.get("value")),
        generator_url=data.get("generator_url", ""),
    )
    return ActiveAlert(alert, data["rule"], data.get("keep_firing_since"))


def _float_out(value: float | None) -> float | str | None:
    # JSON has no NaN or infinities; an alert's value can be either.
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _float_in(value: float | str | None) -> float | None:
    if isinstance(value, str):
        return float(value.replace("Inf", "inf"))
    return value
