"""Rule evaluation as a pure function: (rules, samples, previous state, now) -> outcome.

:func:`evaluate` runs every group that is due at ``now`` against a PromQL engine and returns
the new state, the lifecycle transitions, and the samples to append (recording-rule results,
``ALERTS`` / ``ALERTS_FOR_STATE``, and staleness markers for series that stopped), exactly as
Prometheus's rule manager would (``rules/alerting.go``, ``rules/group.go``):

* inactive -> pending when the expression returns a series; pending -> firing once it has
  held for ``for``; firing -> resolved when it has been absent for ``keep_firing_for``; a
  pending alert that clears is dropped; a resolved one is kept 15 minutes (so the notifier
  can repeat the resolve) and a new occurrence is a new alert with a new ``active_at``;
* one alert per output series: its labels less ``__name__``, plus the rule's labels
  (templates expanded), plus ``alertname``; annotations are re-rendered at every evaluation;
* rules of a group run in order and see the samples recorded by earlier rules in the same
  evaluation; an erroring rule keeps its alerts as they were.

Nothing here reads the clock, the disk or the network; the scheduler persists the state
(``EvaluationState.to_json``) and the transitions, so a restart resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from codequal.alerting.gofmt import query_escape
from codequal.alerting.model import Alert, Transition
from codequal.alerting.rules import AlertingRule, RecordingRule, RuleGroup, rule_key
from codequal.alerting.state import ActiveAlert, EvaluationState, GroupState
from codequal.alerting.templates import QuerySample, TemplateData, render
from codequal.exceptions import CodeQualError
from codequal.tsdb.promql import (
    STALE_NAN,
    Engine,
    InMemorySource,
    Labels,
    Matcher,
    PromQLError,
    Sample,
    Scalar,
    Series,
    Vector,
)
from codequal.tsdb.promql.source import BatchedSource

RESOLVED_RETENTION_SECONDS = 15 * 60  # Prometheus's resolvedRetention
DEFAULT_INTERVAL_SECONDS = 15.0


class EvaluationResult(NamedTuple):
    state: EvaluationState
    transitions: list[Transition]
    samples: list[Sample]  # to append to the metric history (t in ms)


@dataclass(frozen=True)
class _Context:
    now: float
    t_ms: int
    engine: Engine
    external_labels: Mapping[str, str]
    external_url: str


def evaluate(
    groups: Sequence[RuleGroup],
    engine: Engine,
    previous_state: EvaluationState | None,
    now: float,
    *,
    default_interval: float = DEFAULT_INTERVAL_SECONDS,
    external_labels: Mapping[str, str] | None = None,
    external_url: str = "",
) -> EvaluationResult:
    """Evaluate the groups due at ``now`` (Unix seconds); the others keep their state.

    A group is due once per interval slot (``floor(now / interval)`` changed since its last
    evaluation), so scheduler jitter neither skips nor doubles an evaluation. A group or rule
    that is no longer given (the rule files changed) resolves its alerts and marks its series
    stale, so nothing stays firing forever.
    """
    previous = previous_state or EvaluationState()
    overlay = _Overlay(engine)
    ctx = _Context(
        now,
        round(now * 1000),
        Engine(overlay, engine.lookback_delta_ms, engine.default_step_ms, engine.limits),
        external_labels or {},
        external_url.rstrip("/"),
    )
    states: dict[str, GroupState] = {}
    transitions: list[Transition] = []
    samples: list[Sample] = []
    for group in groups:
        before = previous.groups.get(group.key, GroupState())
        if not _due(group, before, now, default_interval):
            states[group.key] = before
            continue
        state, changes, produced = _evaluate_group(group, before, ctx, overlay)
        states[group.key] = state
        transitions += changes
        samples += produced
    for key in previous.groups.keys() - states.keys():
        changes, produced = _retire(previous.groups[key], set(), ctx)
        transitions += changes
        samples += produced
    return EvaluationResult(EvaluationState(states), transitions, samples)


def _due(group: RuleGroup, state: GroupState, now: float, default_interval: float) -> bool:
    if state.last_evaluation is None:
        return True
    interval_ms = round((group.interval_seconds or default_interval) * 1000)
    return round(now * 1000) // interval_ms != round(state.last_evaluation * 1000) // interval_ms


def _evaluate_group(
    group: RuleGroup, before: GroupState, ctx: _Context, overlay: _Overlay
) -> tuple[GroupState, list[Transition], list[Sample]]:
    alerts: dict[str, ActiveAlert] = {}
    series: dict[str, tuple[Labels, ...]] = {}
    errors: dict[str, str] = {}
    kept = {rule_key(rule) for rule in group.rules}
    transitions, samples = _retire(before, kept, ctx)
    for rule in group.rules:
        key = rule_key(rule)
        old_alerts = {fp: a for fp, a in before.alerts.items() if a.rule == key}
        try:
            vector = _query(ctx, rule.expr)
            if isinstance(rule, RecordingRule):
                out = _record(rule, vector, ctx.t_ms, group.limit)
            else:
                new, changes, out = _alert(rule, vector, old_alerts, ctx, group.limit)
                alerts.update(new)
                transitions += changes
        except (PromQLError, _RuleError) as exc:
            errors[key] = exc.message if isinstance(exc, PromQLError) else str(exc)
            alerts.update({} if isinstance(exc, _LimitError) else old_alerts)
            series[key] = before.series.get(key, ())
            continue
        series[key] = tuple(s.labels for s in out)
        gone = set(before.series.get(key, ())) - set(series[key])
        out += [Sample(labels, STALE_NAN, ctx.t_ms) for labels in sorted(gone)]
        overlay.append(out)
        samples += out
    return GroupState(ctx.now, alerts, series, errors), transitions, samples


def _retire(
    before: GroupState, kept: set[str], ctx: _Context
) -> tuple[list[Transition], list[Sample]]:
    """Resolve the alerts and mark stale the series of rules that are gone."""
    transitions = []
    for fp, active in before.alerts.items():
        alert = active.alert
        if active.rule in kept or alert.status == "resolved":
            continue
        if alert.status == "firing":
            resolved = replace(alert, status="resolved", resolved_at=ctx.now)
            transitions.append(Transition(fp, alert.name, "firing", "resolved", ctx.now, resolved))
        else:
            transitions.append(Transition(fp, alert.name, "pending", "inactive", ctx.now, alert))
    stale = [
        Sample(labels, STALE_NAN, ctx.t_ms)
        for key, series in before.series.items()
        if key not in kept
        for labels in series
    ]
    return transitions, stale


class _RuleError(CodeQualError):
    pass


class _LimitError(_RuleError):
    """Over the group's limit: Prometheus drops the rule's alerts as well."""


def _query(ctx: _Context, expr: str) -> Vector:
    result = ctx.engine.instant(expr, ctx.t_ms)
    if isinstance(result, Scalar):
        return Vector([Sample(Labels(), result.value, ctx.t_ms)])
    if not isinstance(result, Vector):
        raise _RuleError("rule result is not a vector or scalar")
    return result


def _record(rule: RecordingRule, vector: Vector, t_ms: int, limit: int) -> list[Sample]:
    out: list[Sample] = []
    seen: set[Labels] = set()
    for s in vector:
        labels = s.labels.set("__name__", rule.record)
        for name, value in rule.labels.items():
            labels = labels.set(name, value)
        if labels in seen:
            raise _RuleError(
                "vector contains metrics with the same labelset after applying rule labels"
            )
        seen.add(labels)
        out.append(Sample(labels, s.value, t_ms))
    if limit and len(out) > limit:
        raise _LimitError(f"exceeded limit {limit} with {len(out)} series")
    return out


# -- alerting rules ---------------------------------------------------------------------------


def _alert(
    rule: AlertingRule,
    vector: Vector,
    old: Mapping[str, ActiveAlert],
    ctx: _Context,
    limit: int,
) -> tuple[dict[str, ActiveAlert], list[Transition], list[Sample]]:
    """Port of ``AlertingRule.Eval``: the rule's alerts after this evaluation."""
    current = _instances(rule, vector, ctx)
    new: dict[str, ActiveAlert] = {}
    for fp, fresh in current.items():
        kept = old.get(fp)
        if kept is not None and kept.alert.status != "resolved":
            alert = replace(kept.alert, value=fresh.value, annotations=fresh.annotations)
            new[fp] = ActiveAlert(alert, kept.rule, None)
        else:
            new[fp] = ActiveAlert(fresh, rule_key(rule), None)
    for fp, active in old.items():
        if fp not in current:
            survivor = _absent(rule, active, ctx)
            if survivor is not None:
                new[fp] = survivor
    new = {fp: _promote(rule, a, ctx) for fp, a in new.items()}
    live = [a for a in new.values() if a.alert.status != "resolved"]
    if limit and len(live) > limit:
        raise _LimitError(f"exceeded limit of {limit} with {len(live)} alerts")
    transitions = _transitions(old, new, ctx.now)
    return new, transitions, _alert_series(live, ctx.t_ms)


def _instances(rule: AlertingRule, vector: Vector, ctx: _Context) -> dict[str, Alert]:
    """One pending alert per output series, with labels and annotations expanded."""
    out: dict[str, Alert] = {}
    for sample in vector:
        data = TemplateData(
            sample.labels.to_dict(), sample.value, ctx.external_labels, ctx.external_url
        )

        def expand(text: str, data: TemplateData = data) -> str:
            return render(text, data, rule.alert, lambda q: _template_query(ctx, q))

        labels = sample.labels.drop_name().to_dict()
        for name, value in rule.labels.items():
            labels[name] = expand(value)
        labels = {k: v for k, v in labels.items() if v != ""}  # an empty value removes a label
        labels["alertname"] = rule.alert
        annotations = {k: expand(v) for k, v in rule.annotations.items()}
        alert = Alert(labels, annotations, "pending", ctx.now, value=sample.value)
        if alert.fingerprint in out:
            raise _RuleError(
                "vector contains metrics with the same labelset after applying alert labels"
            )
        out[alert.fingerprint] = replace(alert, generator_url=_generator_url(ctx, rule.expr))
    return out


def _absent(rule: AlertingRule, active: ActiveAlert, ctx: _Context) -> ActiveAlert | None:
    """An alert whose series is gone: kept firing, resolved, retained, or dropped."""
    alert = active.alert
    if alert.status == "pending":
        return None
    if alert.status == "resolved":
        assert alert.resolved_at is not None
        expired = ctx.now - alert.resolved_at > RESOLVED_RETENTION_SECONDS
        return None if expired else active
    since = active.keep_firing_since if active.keep_firing_since is not None else ctx.now
    held_ms = ctx.t_ms - round(since * 1000)
    if held_ms < round(rule.keep_firing_for_seconds * 1000):
        return ActiveAlert(alert, active.rule, since)
    resolved = replace(alert, status="resolved", resolved_at=ctx.now)
    return ActiveAlert(resolved, active.rule, None)


def _promote(rule: AlertingRule, active: ActiveAlert, ctx: _Context) -> ActiveAlert:
    alert = active.alert
    if alert.status != "pending":
        return active
    held_ms = ctx.t_ms - round(alert.active_at * 1000)
    if held_ms < round(rule.for_seconds * 1000):
        return active
    return ActiveAlert(replace(alert, status="firing", fired_at=ctx.now), active.rule, None)


def _transitions(
    old: Mapping[str, ActiveAlert], new: Mapping[str, ActiveAlert], now: float
) -> list[Transition]:
    out = []
    for fp, active in new.items():
        before = old.get(fp)
        same_instance = before is not None and before.alert.active_at == active.alert.active_at
        from_status = before.alert.status if before is not None and same_instance else "inactive"
        if from_status != active.alert.status:
            out.append(
                Transition(
                    fp, active.alert.name, from_status, active.alert.status, now, active.alert
                )
            )
    for fp, active in old.items():
        if fp not in new and active.alert.status == "pending":
            out.append(Transition(fp, active.alert.name, "pending", "inactive", now, active.alert))
    return out


def _alert_series(alerts: Iterable[ActiveAlert], t_ms: int) -> list[Sample]:
    """``ALERTS`` and ``ALERTS_FOR_STATE`` samples, as Prometheus writes them."""
    out = []
    for active in alerts:
        alert = active.alert
        labels = Labels.of(alert.labels)
        state = labels.set("__name__", "ALERTS").set("alertstate", alert.status)
        out.append(Sample(state, 1.0, t_ms))
        since = float(int(alert.active_at))  # Prometheus stores whole seconds here
        out.append(Sample(labels.set("__name__", "ALERTS_FOR_STATE"), since, t_ms))
    return out


def _template_query(ctx: _Context, expr: str) -> list[QuerySample]:
    return [QuerySample(s.labels.to_dict(), s.value) for s in _query(ctx, expr)]


def _generator_url(ctx: _Context, expr: str) -> str:
    if not ctx.external_url:
        return ""
    return f"{ctx.external_url}/graph?g0.expr={query_escape(expr)}&g0.tab=1"


# -- samples recorded during this evaluation --------------------------------------------------


class _Overlay:
    """The engine's source plus what this evaluation has recorded so far (read-only to the
    caller: later rules see earlier rules' output, the caller's source is never touched)."""

    def __init__(self, engine: Engine) -> None:
        self.base = engine.source
        self.recorded = InMemorySource()

    def append(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            self.recorded.add(s.labels, [s.t], [s.value])

    def select(self, matchers: Sequence[Matcher], start: int, end: int) -> list[Series]:
        extra = {s.labels: s for s in self.recorded.select(matchers, start, end)}
        if not extra:
            return list(self.base.select(matchers, start, end))
        out = []
        for s in self.base.select(matchers, start, end):
            added = extra.pop(s.labels, None)
            out.append(s if added is None else _merge(s, added))
        return out + list(extra.values())

    def select_batches(
        self, matchers: Sequence[Matcher], start: int, end: int, max_samples: int
    ) -> Iterator[list[Series]]:
        """Runs of series from a store that reads them so (long rule windows stay bounded),
        unless this evaluation recorded some of them: then all at once, merged."""
        if isinstance(self.base, BatchedSource) and not self.recorded.select(matchers, start, end):
            yield from self.base.select_batches(matchers, start, end, max_samples)
            return
        yield sorted(self.select(matchers, start, end), key=lambda s: s.labels)


def _merge(base: Series, added: Series) -> Series:
    merged = dict(zip(base.timestamps, base.values, strict=True))
    merged.update(zip(added.timestamps, added.values, strict=True))
    order = sorted(merged)
    return Series(base.labels, order, [merged[t] for t in order])


__all__ = [
    "DEFAULT_INTERVAL_SECONDS",
    "RESOLVED_RETENTION_SECONDS",
    "ActiveAlert",
    "EvaluationResult",
    "EvaluationState",
    "GroupState",
    "evaluate",
]
