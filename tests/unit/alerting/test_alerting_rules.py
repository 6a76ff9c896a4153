"""Rule files: loading the shipped defaults, validation messages that name group and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from codequal.alerting.rules import (
    AlertingRule,
    RecordingRule,
    RuleFileError,
    default_rule_files,
    expand_rule_paths,
    format_duration,
    groups_to_document,
    load_rule_files,
    parse_rule_file,
)

SHIPPED_ALERTS = {
    "HighFailureRate",
    "SlowAnalysis",
    "DeepWikiDown",
    "DeepWikiDiskUsageHigh",
    "DeepWikiDiskUsageCritical",
    "DeepWikiDiskUsageEmergency",
    "DeepWikiDiskExhaustionPredicted",
    "HighMemoryUsage",
    "MemoryExhaustionPredicted",
    "AnalysisErrorsSpike",
    "ErrorRateByComponent",
}


def test_shipped_rules_load_and_cover_the_planned_alerts() -> None:
    groups = load_rule_files(default_rule_files())
    alerts = [r for g in groups for r in g.rules if isinstance(r, AlertingRule)]
    assert {a.alert for a in alerts} == SHIPPED_ALERTS


def test_every_shipped_alert_has_severity_component_and_annotations() -> None:
    for group in load_rule_files(default_rule_files()):
        for rule in group.rules:
            assert isinstance(rule, AlertingRule)
            assert rule.labels["severity"] in ("emergency", "critical", "warning", "ticket")
            assert rule.labels["component"]
            assert {"summary", "description", "runbook_url"} <= set(rule.annotations)
            assert rule.annotations["runbook_url"] == f"/runbooks/{rule.alert}"


def test_a_valid_file_parses_into_the_model() -> None:
    groups = parse_rule_file(
        """
groups:
  - name: g
    interval: 30s
    limit: 10
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels: {tier: "1"}
      - alert: Down
        expr: up == 0
        for: 1m30s
        keep_firing_for: 2m
        labels: {severity: critical, threshold: 0.9}
        annotations: {summary: "{{ $labels.job }} down"}
""",
        "x.yml",
    )
    (group,) = groups
    assert (group.name, group.interval_seconds, group.limit, group.key) == (
        "g",
        30.0,
        10,
        "x.yml;g",
    )
    record, alert = group.rules
    assert record == RecordingRule("job:up:sum", "sum by (job) (up)", {"tier": "1"})
    assert isinstance(alert, AlertingRule)
    assert (alert.for_seconds, alert.keep_firing_for_seconds) == (90.0, 120.0)
    assert alert.labels == {"severity": "critical", "threshold": "0.9"}


def problems_of(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        parse_rule_file(text, "bad.yml")
    return info.value.problems


def test_validation_names_group_rule_and_problem() -> None:
    problems = problems_of(
        """
groups:
  - name: g
    rules:
      - alert: X
        expr: "up +"
      - record: "bad name"
        expr: up
        for: 5m
      - alert: Y
        expr: up
        labels: {__name__: x}
        annotations: {a: "{{ foo }}"}
      - expr: up
      - alert: Z
        record: z
        expr: up
        foo: 1
      - alert: W
        expr: up[5m]
      - alert: V
        for: soon
  - name: g
    rules: []
"""
    )
    assert problems == [
        'group "g", rule 1, "X": could not parse expression: invalid promql query',
        'group "g", rule 2, "bad name": invalid field \'for\' in recording rule',
        'group "g", rule 2, "bad name": invalid recording rule name: bad name',
        'group "g", rule 3, "Y": invalid label name: __name__',
        'group "g", rule 3, "Y": annotation "a": template: __alert_Y:1: function "foo" not defined',
        "group \"g\", rule 4, \"\": one of 'record' or 'alert' must be set",
        'group "g", rule 5, "z": unknown field \'foo\'',
        "group \"g\", rule 5, \"z\": only one of 'record' and 'alert' must be set",
        'group "g", rule 6, "W": the expression returns a matrix; a rule needs a vector or scalar',
        'group "g", rule 7, "V": field \'expr\' must be set in rule',
        'group "g", rule 7, "V": for \'soon\' is not a duration such as "5m", "1h30m" or "90s"',
        'groupname: "g" is repeated in the same file',
    ]


def test_error_message_prefixes_every_problem_with_the_file() -> None:
    with pytest.raises(RuleFileError) as info:
        parse_rule_file("groups:\n  - rules: []\n", "f.yml")
    assert str(info.value) == "f.yml: group 1: the group name must not be empty"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("groups: [", "not valid YAML"),
        ("groups: []\nextra: 1\n", "unknown field(s) extra"),
        ("- 1\n", "not a mapping"),
        ("groups: {a: 1}\n", "groups: must be a list of groups"),
        ("groups:\n  - name: g\n    limit: -1\n", "limit must be a non-negative integer"),
        ("groups:\n  - name: g\n    interval: 5x\n", "interval '5x' is not a duration"),
    ],
)
def test_file_level_problems_are_reported(text: str, problem: str) -> None:
    assert any(problem in p for p in problems_of(text))


def test_an_empty_file_has_no_groups() -> None:
    assert parse_rule_file("", "empty.yml") == []


def test_globs_expand_and_a_pattern_matching_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.rules.yml").write_text("groups: []\n")
    (tmp_path / "b.rules.yml").write_text("groups: []\n")
    assert [p.name for p in expand_rule_paths([f"{tmp_path}/*.rules.yml", " "])] == [
        "a.rules.yml",
        "b.rules.yml",
    ]
    with pytest.raises(RuleFileError, match="no file matches"):
        expand_rule_paths([f"{tmp_path}/*.nothing"])


def test_unreadable_file_is_a_rule_file_error(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="cannot read the file"):
        load_rule_files([tmp_path / "missing.yml"])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (90, "1m30s"), (3600, "1h"), (86400, "1d"), (1.5, "1s500ms"), (14 * 86400, "2w")],
)
def test_durations_are_written_as_prometheus_writes_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_groups_round_trip_through_the_rule_file_form() -> None:
    import yaml

    groups = load_rule_files(default_rule_files())
    text = yaml.safe_dump(groups_to_document(groups), sort_keys=False)
    again = parse_rule_file(text, groups[0].source)
    assert again == groups
