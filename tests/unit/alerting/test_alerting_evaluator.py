"""The pure evaluator: alert lifecycle with explicit times, recording rules, state round trip."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import pytest

from codequal.alerting.evaluator import RESOLVED_RETENTION_SECONDS, evaluate
from codequal.alerting.rules import RuleGroup, parse_rule_file
from codequal.alerting.state import EvaluationState
from codequal.tsdb.promql import STALE_NAN, Engine, InMemorySource, Labels, is_stale

# Unix seconds, a multiple of 60 so that 15 s and 1 m evaluation slots start at T0; every
# test states its times relative to it.
T0 = 1_699_999_980.0


def rules(text: str) -> list[RuleGroup]:
    return parse_rule_file(text, "test.rules.yml")


def engine(series: Mapping[str, Mapping[float, float]]) -> Engine:
    """Series as {'up{instance="a"}': {seconds after T0: value}}."""
    from codequal.tsdb.promql import parse_series_labels

    source = InMemorySource()
    for name, points in series.items():
        times = [round((T0 + t) * 1000) for t in points]
        source.add(parse_series_labels(name), times, list(points.values()))
    return Engine(source)


def scrape(
    name: str, values: Mapping[tuple[int, int], float], step: int = 15
) -> dict[str, dict[float, float]]:
    """A series sampled every ``step`` seconds: {(from, to): value} spans, inclusive."""
    points: dict[float, float] = {}
    for (start, end), value in values.items():
        for t in range(start, end + 1, step):
            points[float(t)] = value
    return {name: points}


DOWN = rules(
    """
groups:
  - name: g
    rules:
      - alert: Down
        expr: up == 0
        for: 1m
        keep_firing_for: 0s
        labels: {severity: critical, team: "{{ $labels.job }}-team"}
        annotations: {summary: "{{ $labels.instance }} is down ({{ $value }})"}
"""
)


class Timeline:
    """Evaluates rules at successive times, keeping state and collecting transitions."""

    def __init__(self, groups: list[RuleGroup], eng: Engine) -> None:
        self.groups, self.engine = groups, eng
        self.state = EvaluationState()
        self.transitions: list[tuple[float, str, str, str]] = []

    def at(self, seconds: float) -> EvaluationState:
        result = evaluate(self.groups, self.engine, self.state, T0 + seconds)
        self.state = result.state
        self.transitions += [
            (t.at - T0, t.alertname, t.from_status, t.to_status) for t in result.transitions
        ]
        return self.state

    def alert(self) -> dict[str, object]:
        (alert,) = self.state.alerts()
        return {
            "status": alert.status,
            "active_at": alert.active_at - T0,
            "fired_at": None if alert.fired_at is None else alert.fired_at - T0,
            "resolved_at": None if alert.resolved_at is None else alert.resolved_at - T0,
        }


def test_alert_goes_pending_then_firing_after_for() -> None:
    up = scrape('up{instance="a", job="api"}', {(0, 600): 0.0})
    tl = Timeline(DOWN, engine(up))
    tl.at(0)
    assert tl.alert() == {
        "status": "pending",
        "active_at": 0,
        "fired_at": None,
        "resolved_at": None,
    }
    tl.at(45)
    assert tl.alert()["status"] == "pending"
    tl.at(60)
    assert tl.alert() == {"status": "firing", "active_at": 0, "fired_at": 60, "resolved_at": None}
    assert tl.transitions == [(0, "Down", "inactive", "pending"), (60, "Down", "pending", "firing")]


def test_one_alert_per_series_with_series_labels_rule_labels_and_alertname() -> None:
    up = {
        **scrape('up{instance="a", job="api"}', {(0, 60): 0.0}),
        **scrape('up{instance="b", job="web"}', {(0, 60): 0.0}),
        **scrape('up{instance="c", job="web"}', {(0, 60): 1.0}),
    }
    state = evaluate(DOWN, engine(up), None, T0).state
    alerts = sorted(state.alerts(), key=lambda a: a.labels["instance"])
    assert [a.labels for a in alerts] == [
        {
            "alertname": "Down",
            "instance": "a",
            "job": "api",
            "severity": "critical",
            "team": "api-team",
        },
        {
            "alertname": "Down",
            "instance": "b",
            "job": "web",
            "severity": "critical",
            "team": "web-team",
        },
    ]
    assert alerts[0].annotations == {"summary": "a is down (0)"}
    assert alerts[0].value == 0.0


def test_for_zero_fires_at_once_with_one_transition() -> None:
    groups = rules("groups: [{name: g, rules: [{alert: Now, expr: 'up == 0'}]}]")
    result = evaluate(groups, engine(scrape("up", {(0, 0): 0.0})), None, T0)
    (alert,) = result.state.alerts()
    assert (alert.status, alert.fired_at) == ("firing", T0)
    assert [(t.from_status, t.to_status) for t in result.transitions] == [("inactive", "firing")]


def test_alert_resolves_when_the_condition_clears_and_is_kept_for_the_retention() -> None:
    up = scrape('up{instance="a", job="api"}', {(0, 120): 0.0, (135, 3000): 1.0})
    tl = Timeline(DOWN, engine(up))
    for t in (0, 60, 120, 135):
        tl.at(t)
    assert tl.alert() == {"status": "resolved", "active_at": 0, "fired_at": 60, "resolved_at": 135}
    assert tl.transitions[-1] == (135, "Down", "firing", "resolved")
    tl.at(135 + RESOLVED_RETENTION_SECONDS)
    assert tl.alert()["status"] == "resolved"  # still reported, so a resolve can be re-sent
    tl.at(150 + RESOLVED_RETENTION_SECONDS)
    assert tl.state.alerts() == []
    assert len(tl.transitions) == 3  # dropping a resolved alert is not a transition


def test_pending_alert_that_clears_is_dropped() -> None:
    up = scrape('up{instance="a", job="api"}', {(0, 30): 0.0, (45, 300): 1.0})
    tl = Timeline(DOWN, engine(up))
    tl.at(0)
    tl.at(45)
    assert tl.state.alerts() == []
    assert tl.transitions == [
        (0, "Down", "inactive", "pending"),
        (45, "Down", "pending", "inactive"),
    ]


def test_keep_firing_for_holds_a_cleared_alert_then_resolves() -> None:
    groups = rules(
        """
groups:
  - name: g
    rules:
      - alert: Down
        expr: up == 0
        keep_firing_for: 2m
"""
    )
    up = scrape("up", {(0, 60): 0.0, (75, 600): 1.0})
    tl = Timeline(groups, engine(up))
    tl.at(0)
    tl.at(75)  # cleared: kept firing, held since 75
    tl.at(150)
    assert tl.alert()["status"] == "firing"
    tl.at(194)  # 119 s after it cleared
    assert tl.alert()["status"] == "firing"
    tl.at(195)  # 120 s: keep_firing_for elapsed
    assert tl.alert() == {"status": "resolved", "active_at": 0, "fired_at": 0, "resolved_at": 195}
    assert tl.transitions == [
        (0, "Down", "inactive", "firing"),
        (195, "Down", "firing", "resolved"),
    ]


def test_keep_firing_for_is_reset_when_the_condition_returns() -> None:
    groups = rules(
        "groups: [{name: g, rules: [{alert: Down, expr: 'up == 0', keep_firing_for: 1m}]}]"
    )
    up = scrape("up", {(0, 0): 0.0, (15, 30): 1.0, (45, 45): 0.0, (60, 400): 1.0})
    tl = Timeline(groups, engine(up))
    for t in (0, 15, 45, 60, 105):
        tl.at(t)
    assert tl.alert()["status"] == "firing"  # held from 60, not from 15
    tl.at(120)
    assert tl.alert()["status"] == "resolved"


def test_refiring_after_resolve_is_a_new_alert_with_a_new_active_at() -> None:
    up = scrape('up{instance="a", job="api"}', {(0, 60): 0.0, (75, 120): 1.0, (135, 400): 0.0})
    tl = Timeline(DOWN, engine(up))
    for t in (0, 60, 75, 135):
        tl.at(t)
    assert tl.alert() == {
        "status": "pending",
        "active_at": 135,
        "fired_at": None,
        "resolved_at": None,
    }
    tl.at(195)
    assert tl.alert()["fired_at"] == 195
    assert tl.transitions[-2:] == [
        (135, "Down", "inactive", "pending"),
        (195, "Down", "pending", "firing"),
    ]


def test_state_survives_a_round_trip_through_json_without_re_paging() -> None:
    up = scrape('up{instance="a", job="api"}', {(0, 300): 0.0})
    eng = engine(up)
    tl = Timeline(DOWN, eng)
    tl.at(0)
    tl.at(60)
    restored = EvaluationState.from_json(json.loads(json.dumps(tl.state.to_json())))
    assert restored == tl.state
    result = evaluate(DOWN, eng, restored, T0 + 75)
    assert result.transitions == []  # still firing: nothing new to notify
    (alert,) = result.state.alerts()
    assert (alert.status, alert.active_at, alert.fired_at) == ("firing", T0, T0 + 60)


def test_non_finite_values_survive_the_json_round_trip() -> None:
    groups = rules("groups: [{name: g, rules: [{alert: Inf, expr: 'x > 0'}]}]")
    state = evaluate(groups, engine({"x": {0.0: math.inf}}), None, T0).state
    restored = EvaluationState.from_json(json.loads(json.dumps(state.to_json())))
    (alert,) = restored.alerts()
    assert alert.value == math.inf


def test_group_interval_is_respected() -> None:
    groups = rules("groups: [{name: g, interval: 1m, rules: [{record: 'up:copy', expr: 'up'}]}]")
    eng = engine(scrape("up", {(0, 600): 1.0}))
    first = evaluate(groups, eng, None, T0)  # at a minute boundary
    assert len(first.samples) == 1
    later = evaluate(groups, eng, first.state, T0 + 45)
    assert later.samples == [] and later.state == first.state
    due = evaluate(groups, eng, later.state, T0 + 61)  # scheduler jitter is fine
    assert len(due.samples) == 1


def test_default_interval_applies_to_groups_without_one() -> None:
    groups = rules("groups: [{name: g, rules: [{record: 'up:copy', expr: 'up'}]}]")
    eng = engine(scrape("up", {(0, 600): 1.0}))
    start = T0
    first = evaluate(groups, eng, None, start, default_interval=30)
    assert evaluate(groups, eng, first.state, start + 15, default_interval=30).samples == []
    assert evaluate(groups, eng, first.state, start + 30, default_interval=30).samples


def test_recording_rules_produce_samples_later_rules_can_read() -> None:
    groups = rules(
        """
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels: {source: rule}
      - alert: FewUp
        expr: job:up:sum < 2
"""
    )
    up = {**scrape('up{instance="a", job="api"}', {(0, 60): 1.0})}
    result = evaluate(groups, engine(up), None, T0)
    recorded = [s for s in result.samples if s.labels.name == "job:up:sum"]
    assert [(s.labels, s.value, s.t) for s in recorded] == [
        (
            Labels.of({"__name__": "job:up:sum", "job": "api", "source": "rule"}),
            1.0,
            round(T0 * 1000),
        )
    ]
    (alert,) = result.state.alerts()
    assert alert.labels == {"alertname": "FewUp", "job": "api", "source": "rule"}


def test_alerts_series_are_written_like_prometheus() -> None:
    result = evaluate(DOWN, engine(scrape('up{instance="a", job="api"}', {(0, 0): 0.0})), None, T0)
    by_name = {s.labels.name: s for s in result.samples}
    assert by_name["ALERTS"].labels.get("alertstate") == "pending"
    assert by_name["ALERTS"].value == 1.0
    assert by_name["ALERTS_FOR_STATE"].value == T0


def test_a_series_that_stops_gets_a_staleness_marker() -> None:
    groups = rules("groups: [{name: g, rules: [{record: 'x:copy', expr: 'x'}]}]")
    eng = engine({'x{k="a"}': {0.0: 1.0}, 'x{k="b"}': {0.0: 1.0, 400.0: 1.0}})
    first = evaluate(groups, eng, None, T0)
    second = evaluate(groups, eng, first.state, T0 + 400)  # x{k="a"} is beyond the lookback
    stale = [s for s in second.samples if is_stale(s.value)]
    assert [s.labels.get("k") for s in stale] == ["a"]
    assert math.isnan(STALE_NAN)


def test_no_traffic_ratio_is_nan_and_never_fires() -> None:
    expr = "rate(failed[5m]) / rate(started[5m]) > 0.1"
    groups = rules(f"groups: [{{name: g, rules: [{{alert: Ratio, expr: '{expr}'}}]}}]")
    flat = {
        "failed": {float(t): 3.0 for t in range(0, 600, 15)},
        "started": {float(t): 9.0 for t in range(0, 600, 15)},
    }
    assert evaluate(groups, engine(flat), None, T0 + 590).state.alerts() == []


def test_a_failing_rule_keeps_its_alerts_and_records_the_error() -> None:
    groups = rules(
        """
groups:
  - name: g
    rules:
      - alert: Clash
        expr: up == 0
        labels: {instance: same}
"""
    )
    one = scrape('up{instance="a"}', {(0, 600): 0.0})
    two = {**one, **scrape('up{instance="b"}', {(30, 600): 0.0})}
    state = evaluate(groups, engine(one), None, T0).state
    (key,) = state.groups
    later = evaluate(groups, engine(two), state, T0 + 30).state
    assert later.alerts() == state.alerts()
    (error,) = later.groups[key].errors.values()
    assert error == "vector contains metrics with the same labelset after applying alert labels"


def test_a_query_error_is_recorded_for_the_rule() -> None:
    groups = rules("groups: [{name: g, rules: [{alert: Bad, expr: 'x + on(k) group_left y'}]}]")
    eng = engine(
        {
            'x{k="1", a="1"}': {0.0: 1},
            'x{k="1", a="2"}': {0.0: 1},
            'y{k="1", b="1"}': {0.0: 1},
            'y{k="1", b="2"}': {0.0: 1},
        }
    )
    state = evaluate(groups, eng, None, T0).state
    (group,) = state.groups.values()
    assert "many-to-many" in next(iter(group.errors.values()))


def test_group_limit_clears_alerts_when_exceeded() -> None:
    groups = rules("groups: [{name: g, limit: 1, rules: [{alert: Many, expr: 'up == 0'}]}]")
    up = {**scrape('up{i="a"}', {(0, 0): 0.0}), **scrape('up{i="b"}', {(0, 0): 0.0})}
    state = evaluate(groups, engine(up), None, T0).state
    (group,) = state.groups.values()
    assert state.alerts() == []
    assert list(group.errors.values()) == ["exceeded limit of 1 with 2 alerts"]


def test_templates_can_query_and_see_external_labels_and_url() -> None:
    groups = rules(
        """
groups:
  - name: g
    rules:
      - alert: Q
        expr: vector(1)
        annotations:
          total: '{{ with query "sum(up)" }}{{ . | first | value }}{{ end }}'
          env: "{{ $externalLabels.env }} {{ $externalURL }}"
"""
    )
    eng = engine({'up{i="a"}': {0.0: 1}, 'up{i="b"}': {0.0: 1}})
    result = evaluate(
        groups, eng, None, T0, external_labels={"env": "prod"}, external_url="http://cq.example/"
    )
    (alert,) = result.state.alerts()
    assert alert.annotations == {"total": "2", "env": "prod http://cq.example"}
    assert alert.generator_url == "http://cq.example/graph?g0.expr=vector%281%29&g0.tab=1"


@pytest.mark.parametrize("seconds", [0, 15, 60])
def test_evaluate_is_pure_same_inputs_same_outputs(seconds: int) -> None:
    eng = engine(scrape('up{instance="a", job="api"}', {(0, 120): 0.0}))
    state = evaluate(DOWN, eng, None, T0).state
    a = evaluate(DOWN, eng, state, T0 + seconds)
    b = evaluate(DOWN, eng, state, T0 + seconds)
    assert a == b


def test_removed_rules_resolve_their_alerts_and_mark_their_series_stale() -> None:
    both = rules(
        """
groups:
  - name: g
    rules:
      - record: up:copy
        expr: up
      - alert: Down
        expr: up == 0
"""
    )
    eng = engine(scrape('up{instance="a"}', {(0, 300): 0.0}))
    state = evaluate(both, eng, None, T0).state
    only_record = [RuleGroup("g", both[0].rules[:1], source="test.rules.yml")]
    result = evaluate(only_record, eng, state, T0 + 15)
    assert [(t.alertname, t.from_status, t.to_status) for t in result.transitions] == [
        ("Down", "firing", "resolved")
    ]
    stale = {s.labels.name for s in result.samples if is_stale(s.value)}
    assert stale == {"ALERTS", "ALERTS_FOR_STATE"}
    assert result.state.alerts() == []


def test_a_removed_group_resolves_its_alerts() -> None:
    eng = engine(scrape('up{instance="a", job="api"}', {(0, 300): 0.0}))
    tl = Timeline(DOWN, eng)
    tl.at(0)
    result = evaluate([], eng, tl.state, T0 + 15)
    assert [(t.from_status, t.to_status) for t in result.transitions] == [("pending", "inactive")]
    assert result.state == EvaluationState()
    assert all(is_stale(s.value) for s in result.samples) and result.samples


def test_rules_overview_reports_health_state_and_alerts() -> None:
    from codequal.alerting.state import rules_overview

    groups = rules(
        """
groups:
  - name: g
    rules:
      - record: up:copy
        expr: up
      - alert: Down
        expr: up == 0
        for: 1m
"""
    )
    eng = engine(scrape('up{instance="a"}', {(0, 300): 0.0}))
    assert [r["health"] for r in rules_overview(groups, EvaluationState())] == ["unknown"] * 2
    state = evaluate(groups, eng, None, T0).state
    record, alert = rules_overview(groups, state)
    assert (record["type"], record["health"], record["lastEvaluation"]) == ("recording", "ok", T0)
    assert (alert["type"], alert["state"], alert["duration"]) == ("alerting", "pending", 60.0)
    assert [a.labels["instance"] for a in alert["alerts"]] == ["a"]
