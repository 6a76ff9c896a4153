"""``codequal rules check|test|export``: promtool's output and exit codes (0 / 1, 2 unreadable)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from codequal.cli.rules_cmd import rules

GOOD = (
    "groups: [{name: g, rules: [{alert: Down, expr: 'up == 0', labels: {severity: critical}}]}]\n"
)
BAD = "groups: [{name: g, rules: [{alert: Down, expr: 'up +'}]}]\n"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(rules, list(args), env=env)


def test_check_without_files_checks_the_shipped_rules() -> None:
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "SUCCESS: 11 rules found" in result.stdout


def test_check_reports_problems_and_exits_1(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yml", tmp_path / "bad.yml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    result = run("check", str(good), str(bad))
    assert result.exit_code == 1
    assert f"Checking {good}\n  SUCCESS: 1 rules found\n" in result.stdout
    assert f'{bad}: group "g", rule 1, "Down": could not parse expression' in result.stderr


def test_unreadable_input_exits_2_with_a_sentence(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    for command in ("check", "test"):
        result = run(command, str(missing))
        assert result.exit_code == 2
        assert result.stderr == f"codequal: cannot read {missing}: No such file or directory.\n"


def test_test_without_files_runs_the_shipped_tests() -> None:
    result = run("test")
    assert result.exit_code == 0, result.output
    assert "codequal.rules.test.yml\n  SUCCESS\n" in result.stdout


def test_test_with_a_failing_expectation_exits_1(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(GOOD)
    tests = tmp_path / "t.yml"
    tests.write_text(
        "rule_files: [r.yml]\ntests:\n  - interval: 1m\n"
        "    input_series: [{series: up, values: '0 0'}]\n"
        "    alert_rule_test: [{eval_time: 1m, alertname: Down, exp_alerts: []}]\n"
    )
    result = run("test", str(tests))
    assert result.exit_code == 1
    assert "  FAILED:\n    alertname: Down, time: 1m, \n        exp:[], \n" in result.stderr


def test_export_writes_files_using_channel_settings(tmp_path: Path) -> None:
    env = {
        "CODEQUAL_DATA_DIR": str(tmp_path / "data"),
        "CODEQUAL_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
        "CODEQUAL_EXTERNAL_URL": "https://cq.example.com",
    }
    result = run("export", "--out", str(tmp_path / "out"), "--disk-horizon", "6h", env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        str(tmp_path / "out" / "codequal.rules.yml"),
        str(tmp_path / "out" / "alertmanager.yml"),
    ]
    rules_text = (tmp_path / "out" / "codequal.rules.yml").read_text()
    assert "https://cq.example.com/runbooks/SlowAnalysis" in rules_text
    assert "6 * 3600" in rules_text
    assert "hooks.slack.com" in (tmp_path / "out" / "alertmanager.yml").read_text()


def test_export_with_a_bad_horizon_exits_2(tmp_path: Path) -> None:
    env = {"CODEQUAL_DATA_DIR": str(tmp_path / "data")}
    result = run("export", "--out", str(tmp_path / "out"), "--disk-horizon", "soon", env=env)
    assert result.exit_code == 2
    assert "disk horizon 'soon'" in result.stderr
