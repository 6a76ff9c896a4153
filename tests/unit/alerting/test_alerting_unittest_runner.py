"""``codequal rules test``: promtool's test format, procedure and failure messages."""

from __future__ import annotations

from pathlib import Path

import yaml

from codequal.alerting.rules import default_rule_files
from codequal.alerting.unittest import run_test_file

SHIPPED_TESTS = default_rule_files()[0].with_name("codequal.rules.test.yml")

RULES = """
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: up == 0
        for: 2m
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.instance }} down"}
"""


def write(tmp_path: Path, tests: list[dict[str, object]], **extra: object) -> Path:
    (tmp_path / "r.yml").write_text(RULES)
    doc = {"rule_files": ["r.yml"], "evaluation_interval": "1m", "tests": tests, **extra}
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def group(**fields: object) -> dict[str, object]:
    return {
        "interval": "1m",
        "input_series": [{"series": 'up{job="a", instance="i1"}', "values": "1 0 0 0 0 1"}],
        **fields,
    }


def test_shipped_rule_tests_pass() -> None:
    result = run_test_file(SHIPPED_TESTS)
    assert result.errors == []


def test_passing_alert_and_expression_tests(tmp_path: Path) -> None:
    tests = [
        group(
            alert_rule_test=[
                {"eval_time": "2m", "alertname": "Down", "exp_alerts": []},
                {
                    "eval_time": "3m",
                    "alertname": "Down",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", "instance": "i1", "job": "a"},
                            "exp_annotations": {"summary": "i1 down"},
                        }
                    ],
                },
            ],
            promql_expr_test=[
                {
                    "expr": "job:up:sum",
                    "eval_time": "5m",
                    "exp_samples": [{"labels": 'job:up:sum{job="a"}', "value": 1}],
                },
                {
                    "expr": "scalar(job:up:sum)",
                    "eval_time": "1m",
                    "exp_samples": [{"labels": "{}", "value": 0}],
                },
            ],
        )
    ]
    assert run_test_file(write(tmp_path, tests)).errors == []


def test_wrong_alert_expectation_is_reported_like_promtool(tmp_path: Path) -> None:
    tests = [
        group(
            name="grp",
            alert_rule_test=[
                {
                    "eval_time": "3m",
                    "alertname": "Down",
                    "exp_alerts": [
                        {"exp_labels": {"severity": "critical", "instance": "i2", "job": "a"}}
                    ],
                }
            ],
        )
    ]
    (error,) = run_test_file(write(tmp_path, tests)).errors
    assert error == (
        "    name: grp,\n"
        "    alertname: Down, time: 3m, \n"
        "        exp:[\n"
        "            0:\n"
        '              Labels:{alertname="Down", instance="i2", job="a", severity="critical"}\n'
        "              Annotations:{}\n"
        "            ], \n"
        "        got:[\n"
        "            0:\n"
        '              Labels:{alertname="Down", instance="i1", job="a", severity="critical"}\n'
        '              Annotations:{summary="i1 down"}\n'
        "            ]"
    )


def test_wrong_sample_expectation_is_reported_like_promtool(tmp_path: Path) -> None:
    tests = [
        group(
            promql_expr_test=[
                {
                    "expr": "job:up:sum",
                    "eval_time": "2m",
                    "exp_samples": [{"labels": 'job:up:sum{job="a"}', "value": 1}],
                },
                {"expr": "up[5m]", "eval_time": "1m"},
                {"expr": "up", "eval_time": "1m", "exp_samples": [{"labels": "up{", "value": 1}]},
            ]
        )
    ]
    errors = run_test_file(write(tmp_path, tests)).errors
    assert errors == [
        '    expr: "job:up:sum", time: 2m,\n'
        '        exp: {__name__="job:up:sum", job="a"} 1E+00\n'
        '        got: {__name__="job:up:sum", job="a"} 0E+00',
        '    expr: "up[5m]", time: 1m, err: rule result is not a vector or scalar',
        '    expr: "up", time: 1m, err: labels "up{": unexpected end of input inside braces',
    ]


def test_values_compare_exactly_so_nan_never_matches(tmp_path: Path) -> None:
    tests = [
        group(
            input_series=[{"series": "x", "values": "NaN"}],
            promql_expr_test=[
                {"expr": "x", "eval_time": "0m", "exp_samples": [{"labels": "x", "value": ".nan"}]}
            ],
        )
    ]
    (error,) = run_test_file(write(tmp_path, tests)).errors
    assert 'exp: {__name__="x"} NaN' in error


def test_zero_x_n_means_zero_repeated_as_in_promtool(tmp_path: Path) -> None:
    tests = [
        group(
            input_series=[{"series": "a", "values": "0x9 3"}],
            promql_expr_test=[
                {
                    "expr": "count_over_time(a[1h])",
                    "eval_time": "10m",
                    "exp_samples": [{"labels": "{}", "value": 11}],
                },
            ],
        )
    ]
    assert run_test_file(write(tmp_path, tests)).errors == []


def test_rule_evaluation_errors_stop_the_group(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(
        "groups: [{name: g, rules: [{alert: Clash, expr: 'up', labels: {instance: x}}]}]"
    )
    doc = {
        "rule_files": ["r.yml"],
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'up{instance="a"}', "values": "1 1"},
                    {"series": 'up{instance="b"}', "values": "1 1"},
                ],
                "alert_rule_test": [{"eval_time": "1m", "alertname": "Clash", "exp_alerts": []}],
            }
        ],
    }
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(doc))
    assert run_test_file(path).errors == [
        "    rule: Clash, time: 0s, err: "
        "vector contains metrics with the same labelset after applying alert labels"
    ]


def test_file_problems_are_errors_and_missing_rule_files_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, [group(foo=1)])
    assert run_test_file(path).errors == [
        "yaml: unmarshal errors:\n  field foo not found in type main.testGroup"
    ]
    missing = write(tmp_path, [group()], rule_files=["nothing.yml"])
    result = run_test_file(missing)
    assert result.passed
    assert result.warnings == [f"no file match pattern {tmp_path / 'nothing.yml'}"]
    no_name = write(tmp_path, [group(alert_rule_test=[{"eval_time": "1m"}])])
    assert run_test_file(no_name).errors == [
        "an item under alert_rule_test misses required attribute alertname at eval_time 1m"
    ]


def test_an_invalid_rule_file_fails_the_test_file(tmp_path: Path) -> None:
    path = write(tmp_path, [group()])
    (tmp_path / "r.yml").write_text("groups: [{name: g, rules: [{alert: X}]}]")
    (error,) = run_test_file(path).errors
    assert "field 'expr' must be set in rule" in error


def test_every_shipped_alert_has_a_unit_test_where_it_fires() -> None:
    from codequal.alerting.rules import AlertingRule, load_rule_files

    shipped = {
        r.alert
        for g in load_rule_files(default_rule_files())
        for r in g.rules
        if isinstance(r, AlertingRule)
    }
    doc = yaml.safe_load(SHIPPED_TESTS.read_text())
    fired = {
        case["alertname"]
        for group in doc["tests"]
        for case in group.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert shipped == fired
