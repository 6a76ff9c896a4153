"""The same rules mean the same thing to CodeQual and to Prometheus + Alertmanager.

Debian's ``promtool`` (Prometheus 2.42) and ``amtool`` (Alertmanager 0.25) are the judges:

* the shipped rule file, and the exported one, pass ``promtool check rules``; the exported
  ``alertmanager.yml`` passes ``amtool check-config`` for several channel combinations;
* the shipped unit tests pass under ``promtool test rules`` and ``codequal rules test``, and a
  wrong expectation fails under both with the same message;
* differential tests: our evaluator's alerts (labels and rendered annotations, every minute of
  a scenario with recording rules, ``for``, ``keep_firing_for``, flapping and stale series) and
  our template renderings become the expectations of a promtool test file, which must pass.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from codequal.alerting.evaluator import evaluate
from codequal.alerting.export import export
from codequal.alerting.rules import default_rule_files, load_rule_file
from codequal.alerting.state import EvaluationState
from codequal.alerting.unittest import run_test_file
from codequal.tsdb.promql import Engine, Labels, Scalar, Vector, source_from_input_series

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
REQUIRE_SERVICES = os.environ.get("CODEQUAL_REQUIRE_SERVICES") == "1"
SHIPPED_RULES = default_rule_files()[0]
SHIPPED_TESTS = SHIPPED_RULES.with_name("codequal.rules.test.yml")
MINUTE_MS = 60_000

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not REQUIRE_SERVICES,
    reason="promtool not installed (Debian package prometheus); required when "
    "CODEQUAL_REQUIRE_SERVICES=1",
)
needs_amtool = pytest.mark.skipif(
    AMTOOL is None and not REQUIRE_SERVICES,
    reason="amtool not installed (Debian package prometheus-alertmanager); required when "
    "CODEQUAL_REQUIRE_SERVICES=1",
)


def tool(name: str | None, *args: str | Path) -> subprocess.CompletedProcess[str]:
    assert name is not None, "the tool is required (CODEQUAL_REQUIRE_SERVICES=1)"
    return subprocess.run(
        [name, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def dump(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    return path


# -- rule files and alertmanager.yml ----------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_shipped_rules() -> None:
    run = tool(PROMTOOL, "check", "rules", SHIPPED_RULES)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 11 rules found" in run.stdout


SLACK = {"CODEQUAL_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/secret"}
EMAIL = {
    "CODEQUAL_SMTP_URL": "smtp://alerts:pw@127.0.0.1:2525?starttls=false",
    "CODEQUAL_ALERT_EMAIL_TO": "ops@example.com, oncall@example.com",
    "CODEQUAL_ALERT_EMAIL_FROM": "codequal@example.com",
}
SMTPS = {"CODEQUAL_SMTP_URL": "smtps://mail.example.com", "CODEQUAL_ALERT_EMAIL_TO": "a@b.c"}
PAGERDUTY = {
    "CODEQUAL_PAGERDUTY_ROUTING_KEY": "0123456789abcdef0123456789abcdef",
    "CODEQUAL_PAGERDUTY_URL": "http://127.0.0.1:9/pagerduty",
}
WEBHOOK = {"CODEQUAL_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
COMBINATIONS = {
    "none": {},
    "slack": SLACK,
    "email": EMAIL,
    "smtps": SMTPS,
    "pagerduty": PAGERDUTY,
    "webhook": WEBHOOK,
    "pagerduty+slack": {**PAGERDUTY, **SLACK},
    "all": {**SLACK, **EMAIL, **PAGERDUTY, **WEBHOOK},
}


@needs_promtool
@needs_amtool
@pytest.mark.parametrize("channels", list(COMBINATIONS))
def test_exported_files_pass_promtool_and_amtool(channels: str, tmp_path: Path) -> None:
    rules_file, am_file = export(
        tmp_path, COMBINATIONS[channels], base_url="https://cq.example.com", disk_horizon="8h"
    )
    checked = tool(PROMTOOL, "check", "rules", rules_file)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = tool(AMTOOL, "check-config", am_file)
    assert config.returncode == 0, config.stdout + config.stderr
    assert "4 inhibit rules" in config.stdout


@needs_amtool
def test_amtool_routes_alerts_as_the_default_routing_says(tmp_path: Path) -> None:
    _, am_file = export(tmp_path, {**SLACK, **EMAIL, **PAGERDUTY, **WEBHOOK})
    expectations = {
        ("alertname=DeepWikiDown", "severity=critical"): "webhook,pagerduty-slack-email",
        ("alertname=HighFailureRate", "severity=critical"): "webhook,pagerduty-slack",
        ("alertname=DeepWikiDiskUsageEmergency", "severity=emergency"): "webhook,pagerduty-slack",
        ("alertname=HighMemoryUsage", "severity=warning"): "webhook,slack",
        ("alertname=Budget", "severity=ticket"): "webhook,email",
    }
    for labels, receivers in expectations.items():
        run = tool(AMTOOL, "config", "routes", "test", f"--config.file={am_file}", *labels)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.strip() == receivers, labels


# -- the shipped unit tests under both engines ------------------------------------------------


@needs_promtool
def test_shipped_unit_tests_pass_under_promtool_and_codequal() -> None:
    run = tool(PROMTOOL, "test", "rules", SHIPPED_TESTS)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run_test_file(SHIPPED_TESTS).errors == []


def shipped_tests_copy(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    shutil.copy(SHIPPED_RULES, tmp_path / SHIPPED_RULES.name)
    doc = yaml.safe_load(SHIPPED_TESTS.read_text())
    return tmp_path / SHIPPED_TESTS.name, doc


@needs_promtool
def test_a_wrong_expectation_fails_under_both_with_the_same_message(tmp_path: Path) -> None:
    path, doc = shipped_tests_copy(tmp_path)
    case = next(
        c
        for group in doc["tests"]
        for c in group.get("alert_rule_test", [])
        if c["alertname"] == "DeepWikiDown" and c["exp_alerts"]
    )
    case["exp_alerts"][0]["exp_annotations"]["summary"] = "DeepWiki is fine"
    dump(path, doc)
    run = tool(PROMTOOL, "test", "rules", path)
    ours = run_test_file(path).errors
    assert run.returncode == 1
    assert len(ours) == 1
    assert ours[0] in run.stderr  # word for word what promtool printed
    assert 'summary="DeepWiki is fine"' in ours[0]


@needs_promtool
def test_a_wrong_sample_fails_under_both_with_the_same_message(tmp_path: Path) -> None:
    path, doc = shipped_tests_copy(tmp_path)
    sample = doc["tests"][-1]["promql_expr_test"][0]["exp_samples"][0]
    sample["value"] = math.nextafter(sample["value"], 1.0)
    dump(path, doc)
    run = tool(PROMTOOL, "test", "rules", path)
    (ours,) = run_test_file(path).errors
    assert run.returncode == 1
    assert ours in run.stderr


# -- differential: evaluator lifecycle --------------------------------------------------------

LIFECYCLE_RULES = """
groups:
  - name: recording
    rules:
      - record: job:requests:rate2m
        expr: sum without (instance) (rate(requests_total[2m]))
      - record: job:requests:hot
        expr: job:requests:rate2m > 1
        labels: {tier: hot}
  - name: alerts
    rules:
      - alert: Down
        expr: up == 0
        for: 2m
        keep_firing_for: 3m
        labels: {severity: critical, who: "{{ $labels.instance }}"}
        annotations:
          summary: "{{ $labels.instance }} of {{ $labels.job }} down ({{ $value }})"
          total: '{{ with query "count(up == 0)" }}{{ . | first | value }}{{ else }}none{{ end }}'
      - alert: HotJob
        expr: job:requests:hot
        annotations:
          summary: "{{ $labels.job }} at {{ $value | humanize }}/s ({{ $labels.tier }})"
      - alert: Flappy
        expr: flappy > 0
        for: 1m
        labels: {severity: warning}
      - alert: Always
        expr: vector(0.75)
        labels: {severity: '{{ if gt $value 0.5 }}high{{ else }}low{{ end }}'}
        annotations: {env: "{{ $externalLabels.env }}"}
      - alert: Ratio
        expr: |
          sum(rate(requests_total{job="api"}[5m])) / sum(rate(requests_total{job="web"}[5m])) > 5
        annotations: {summary: '{{ printf "%.3f" $value }} x'}
"""
LIFECYCLE_SERIES = [
    ('up{instance="a", job="api"}', "1 1 0 0 0 0 1 1 0 0 0 0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"),
    ('up{instance="b", job="api"}', "0 0 0 stale _ _ 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"),
    ('up{instance="c", job="web"}', "1+0x30"),
    ('requests_total{job="api", instance="a"}', "0+30x20 600+200x10"),
    ('requests_total{job="api", instance="b"}', "0+60x15"),
    ('requests_total{job="web", instance="c"}', "0+6x30"),
    ('flappy{k="x"}', "1 0 1 1 0 1 1 1 0 _ _ 1 1 1 1 stale 1 1 1 1 1 1"),
]
LIFECYCLE_ALERTS = ("Down", "HotJob", "Flappy", "Always", "Ratio")
LIFECYCLE_EXPRS = (
    "ALERTS",
    "ALERTS_FOR_STATE",
    "job:requests:rate2m",
    "job:requests:hot",
    'count(ALERTS{alertstate="firing"})',
)


def our_expectations(
    rules_path: Path, eval_times_ms: list[int], external_labels: dict[str, str]
) -> tuple[dict[int, dict[str, list[dict[str, Any]]]], Engine]:
    """Our evaluator's firing alerts at each eval time, stepping as promtool steps."""
    groups = [replace(g, interval_seconds=60.0) for g in load_rule_file(rules_path)]
    inputs = source_from_input_series(
        [{"series": s, "values": v} for s, v in LIFECYCLE_SERIES], MINUTE_MS
    )
    recorded: list[tuple[Labels, int, float]] = []
    state = EvaluationState()
    firing: dict[int, dict[str, list[dict[str, Any]]]] = {}
    last = max(eval_times_ms) // MINUTE_MS * MINUTE_MS
    for ts in range(0, last + 1, MINUTE_MS):
        source = inputs.truncated(ts)  # promtool has loaded samples up to this step
        for labels, t, value in recorded:
            source.add(labels, [t], [value])
        result = evaluate(groups, Engine(source), state, ts / 1000, external_labels=external_labels)
        state = result.state
        recorded += [(s.labels, s.t, s.value) for s in result.samples]
        if ts in eval_times_ms:
            firing[ts] = {name: [] for name in LIFECYCLE_ALERTS}
            for alert in state.alerts():
                if alert.status == "firing":
                    labels = {k: v for k, v in alert.labels.items() if k != "alertname"}
                    expected = {"exp_labels": labels, "exp_annotations": dict(alert.annotations)}
                    firing[ts][alert.name].append(expected)
    source = inputs.truncated(last)
    for labels, t, value in recorded:
        source.add(labels, [t], [value])
    return firing, Engine(source)


def exp_samples(result: object) -> list[dict[str, Any]]:
    pairs = [(Labels(), result.value)] if isinstance(result, Scalar) else []
    if isinstance(result, Vector):
        pairs = [(s.labels, s.value) for s in result]
    assert not any(math.isnan(v) for _, v in pairs), "promtool cannot compare NaN"
    return [{"labels": str(labels) if labels else "{}", "value": v} for labels, v in pairs]


@needs_promtool
def test_evaluator_lifecycle_agrees_with_prometheus_every_minute(tmp_path: Path) -> None:
    rules_path = tmp_path / "lifecycle.rules.yml"
    rules_path.write_text(LIFECYCLE_RULES)
    times = [m * MINUTE_MS for m in range(0, 29)]
    firing, engine = our_expectations(rules_path, times, {"env": "prod"})
    alert_tests = [
        {"eval_time": f"{t // MINUTE_MS}m", "alertname": name, "exp_alerts": firing[t][name]}
        for t in times
        for name in LIFECYCLE_ALERTS
    ]
    expr_tests = [
        {
            "expr": e,
            "eval_time": f"{m}m",
            "exp_samples": exp_samples(engine.instant(e, m * MINUTE_MS)),
        }
        for e in LIFECYCLE_EXPRS
        for m in (0, 3, 5, 9, 14, 17, 19, 22, 28)
    ]
    doc = {
        "rule_files": [rules_path.name],
        "evaluation_interval": "1m",
        "group_eval_order": ["recording", "alerts"],
        "tests": [
            {
                "interval": "1m",
                "external_labels": {"env": "prod"},
                "input_series": [{"series": s, "values": v} for s, v in LIFECYCLE_SERIES],
                "alert_rule_test": alert_tests,
                "promql_expr_test": expr_tests,
            }
        ],
    }
    fired = sum(len(c["exp_alerts"]) for c in alert_tests)
    assert len(alert_tests) == 145 and fired > 80, "the scenario must exercise the lifecycle"
    assert {a["exp_labels"].get("who") for c in alert_tests for a in c["exp_alerts"]} >= {"a", "b"}
    path = dump(tmp_path / "lifecycle.test.yml", doc)
    run = tool(PROMTOOL, "test", "rules", path)
    assert run.returncode == 0, f"promtool disagrees:\n{run.stderr[:4000]}"
    assert run_test_file(path).errors == []  # and our runner reaches the same verdicts


# -- differential: templates ------------------------------------------------------------------

TEMPLATES = [
    "{{ $labels.instance }} {{ $value }} {{ $labels.missing }}.",
    "{{ humanize $value }}|{{ humanize 1234567 }}|{{ humanize 0.000123 }}|{{ humanize -1500 }}",
    "{{ humanize1024 $value }}|{{ humanize1024 1048576 }}|{{ humanize1024 0.5 }}",
    "{{ humanizeDuration $value }}|{{ humanizeDuration 3661 }}|{{ humanizeDuration 0.0012 }}",
    "{{ humanizePercentage $value }}|{{ humanizePercentage 0.1234 }}",
    "{{ humanizeTimestamp $value }}|{{ humanizeTimestamp 1435065584.128 }}",
    '{{ printf "%.2f" $value }}|{{ printf "%v %g %e" $value $value $value }}',
    '{{ printf "%d" $value }}|{{ printf "%x" "hi" }}',
    '{{ printf "%5.1f|%-6s|%08.3f|%+d|%x|%q|%t|%%" 3.14159 "ab" -3.14159 5 255 "a\\"b" true }}',
    '{{ printf "%f" 1 }}|{{ printf "%d" }}|{{ printf "%d" 1 2 }}|{{ printf "%s" 1.5 }}',
    '{{ title "hello world-foo_bar" }}|{{ toUpper "abc" }}|{{ match "a.c" "xabcx" }}',
    '{{ reReplaceAll "(a)b" "${1}X" "abab" }}|{{ stripPort $labels.instance }}',
    '{{ graphLink "up > 1" }}|{{ tableLink "a{b=\\"c\\"}" }}',
    "{{ $labels }}|{{ $externalLabels }}|{{ .Value }}|{{ .Labels.job }}",
    "{{ if gt $value 0.5 }}big{{ else if gt $value 0.1 }}mid{{ else }}small{{ end }}",
    "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
    "{{ with $labels.nope }}x{{ else }}y{{ end }}|{{ with $labels.job }}{{ . }}{{ end }}",
    '{{- " trimmed " -}}   |  {{- 1 }}  {{- /* comment */ -}}  x',
    '{{ print 1 2 "a" "b" 3 }}|{{ urlquery "a b&c" }}|{{ and 1 0 }}|{{ or 0 "y" }}|{{ not true }}',
    '{{ with query "sum(t)" }}{{ . | first | value | humanize }}{{ end }}',
    '{{ range sortByLabel "v" (query "t") }}{{ .Labels.v }},{{ end }}',
    '{{ humanize "abc" }}',
    "{{ gt $value 1 }}",
    "{{ title 5 }}",
    "{{ humanize 1 2 }}",
    "{{ $labels.job.x }}",
    "{{ .Nope }}",
    '{{ 0x10 }}|{{ -1.5 }}|{{ 1e-7 }}|{{ true }}|{{ "a\\tb" }}|{{ `raw\\n` }}',
]
TEMPLATE_VALUES = ["0.123456", "1234567.891", "-0.5", "1e21", "0", "+Inf", "5e-324", "99.995"]


@needs_promtool
def test_templates_render_as_prometheus_renders_them(tmp_path: Path) -> None:
    annotations = {f"t{i:02d}": text for i, text in enumerate(TEMPLATES)}
    rules_doc = {
        "groups": [
            {"name": "t", "rules": [{"alert": "T", "expr": "t", "annotations": annotations}]}
        ]
    }
    rules_path = dump(tmp_path / "templates.rules.yml", rules_doc)
    series = [
        {"series": f't{{v="{i}", instance="host:9090", job="api"}}', "values": value}
        for i, value in enumerate(TEMPLATE_VALUES)
    ]
    groups = load_rule_file(rules_path)
    source = source_from_input_series(series, MINUTE_MS)
    state = evaluate(groups, Engine(source), None, 0.0, external_labels={"env": "prod"}).state
    expected = [
        {
            "exp_labels": {k: v for k, v in a.labels.items() if k != "alertname"},
            "exp_annotations": dict(a.annotations),
        }
        for a in state.alerts()
    ]
    assert len(expected) == len(TEMPLATE_VALUES)
    doc = {
        "rule_files": [rules_path.name],
        "tests": [
            {
                "interval": "1m",
                "external_labels": {"env": "prod"},
                "input_series": series,
                "alert_rule_test": [{"eval_time": "0m", "alertname": "T", "exp_alerts": expected}],
            }
        ],
    }
    run = tool(PROMTOOL, "test", "rules", dump(tmp_path / "templates.test.yml", doc))
    assert run.returncode == 0, f"promtool renders differently:\n{run.stderr[:6000]}"


@needs_promtool
def test_promtool_notices_a_one_character_template_difference(tmp_path: Path) -> None:
    """The comparison above is exact: a single changed character fails it."""
    rules_path = dump(
        tmp_path / "r.yml",
        {
            "groups": [
                {
                    "name": "t",
                    "rules": [
                        {
                            "alert": "T",
                            "expr": "vector(1234567)",
                            "annotations": {"a": "{{ humanize $value }}"},
                        }
                    ],
                }
            ]
        },
    )
    exp = [{"exp_labels": {}, "exp_annotations": {"a": "1.234M"}}]  # Prometheus says 1.235M
    doc = {
        "rule_files": [rules_path.name],
        "tests": [
            {
                "interval": "1m",
                "input_series": [],
                "alert_rule_test": [
                    {"eval_time": "0m", "alertname": "T", "exp_alerts": copy.deepcopy(exp)}
                ],
            }
        ],
    }
    path = dump(tmp_path / "t.yml", doc)
    assert tool(PROMTOOL, "test", "rules", path).returncode == 1
    assert not run_test_file(path).passed
