"""``codequal rules export``: rule files for Prometheus and alertmanager.yml for the channels."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from codequal.alerting.export import ExportError, alertmanager_config, export, with_disk_horizon
from codequal.alerting.rules import AlertingRule, default_rule_files, load_rule_file

ALL = {
    "CODEQUAL_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
    "CODEQUAL_SMTP_URL": "smtp://alerts:pw@mail.example.com:587?starttls=true",
    "CODEQUAL_ALERT_EMAIL_TO": "ops@example.com,oncall@example.com",
    "CODEQUAL_PAGERDUTY_ROUTING_KEY": "R0UT1NG",
    "CODEQUAL_PAGERDUTY_URL": "http://127.0.0.1:9/pd",
    "CODEQUAL_WEBHOOK_URL": "http://127.0.0.1:9/hook",
}


def receivers(config: dict[str, object]) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in config["receivers"]}  # type: ignore[attr-defined,index]


def routes(config: dict[str, object]) -> list[tuple[list[str], str]]:
    return [(r.get("matchers", []), r["receiver"]) for r in config["route"]["routes"]]  # type: ignore[index]


def test_default_routing_by_severity_to_the_configured_channels() -> None:
    config = alertmanager_config(ALL)
    assert routes(config) == [
        ([], "webhook"),
        (['alertname="DeepWikiDown"'], "pagerduty-slack-email"),
        (['severity=~"critical|emergency"'], "pagerduty-slack"),
        (['severity="warning"'], "slack"),
        (['severity="ticket"'], "email"),
    ]
    pd = receivers(config)["pagerduty-slack"]["pagerduty_configs"][0]  # type: ignore[index]
    assert (pd["routing_key"], pd["url"]) == ("R0UT1NG", "http://127.0.0.1:9/pd/v2/enqueue")
    email = receivers(config)["email"]["email_configs"][0]  # type: ignore[index]
    assert email["to"] == "ops@example.com, oncall@example.com"
    assert config["global"] == {
        "smtp_smarthost": "mail.example.com:587",
        "smtp_from": "codequal@localhost",
        "smtp_require_tls": True,
        "smtp_auth_username": "alerts",
        "smtp_auth_password": "pw",
    }


def test_timing_and_grouping() -> None:
    route = alertmanager_config({})["route"]
    assert route["group_by"] == ["alertname", "severity"]  # type: ignore[index]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "30s",
        "5m",
        "4h",
    )  # type: ignore[index]


def test_without_channels_every_route_goes_to_a_receiver_that_sends_nothing() -> None:
    config = alertmanager_config({})
    assert {receiver for _, receiver in routes(config)} == {"null"}
    assert list(receivers(config)) == ["null"]
    assert "global" not in config


def test_missing_channels_are_left_out_of_receivers() -> None:
    config = alertmanager_config({"CODEQUAL_SLACK_WEBHOOK_URL": ALL["CODEQUAL_SLACK_WEBHOOK_URL"]})
    assert dict((tuple(m), r) for m, r in routes(config)) == {
        ('alertname="DeepWikiDown"',): "slack",
        ('severity=~"critical|emergency"',): "slack",
        ('severity="warning"',): "slack",
        ('severity="ticket"',): "null",
    }


def test_critical_disk_alert_inhibits_the_warning_and_emergency_the_critical() -> None:
    rules = alertmanager_config({})["inhibit_rules"]
    assert {
        "source_matchers": ['alertname=~"DeepWiki.*Disk.*"', 'severity="critical"'],
        "target_matchers": ['alertname=~"DeepWiki.*Disk.*"', 'severity="warning"'],
        "equal": ["component"],
    } in rules  # type: ignore[operator]
    assert any(
        'severity="emergency"' in r["source_matchers"]
        and 'severity=~"critical|warning"' in r["target_matchers"]  # type: ignore[index]
        for r in rules  # type: ignore[attr-defined]
    )


def test_export_writes_rules_with_absolute_runbooks_and_a_private_alertmanager_yml(
    tmp_path: Path,
) -> None:
    written = export(tmp_path / "out", ALL, base_url="https://cq.example.com/")
    assert [p.name for p in written] == ["codequal.rules.yml", "alertmanager.yml"]
    groups = load_rule_file(written[0])
    urls = {
        r.annotations["runbook_url"] for g in groups for r in g.rules if isinstance(r, AlertingRule)
    }
    assert "https://cq.example.com/runbooks/DeepWikiDown" in urls
    assert all(u.startswith("https://cq.example.com/runbooks/") for u in urls)
    assert stat.S_IMODE(written[1].stat().st_mode) == 0o600  # it holds keys and passwords
    assert yaml.safe_load(written[1].read_text()) == alertmanager_config(ALL)


def test_export_keeps_relative_runbooks_without_a_base_url(tmp_path: Path) -> None:
    written = export(tmp_path, {})
    assert "runbook_url: /runbooks/HighFailureRate" in written[0].read_text()


def test_operator_rule_files_are_exported_beside_the_shipped_ones(tmp_path: Path) -> None:
    own = tmp_path / "codequal.rules.yml"  # same name as the shipped file: gets a suffix
    own.write_text("groups: [{name: mine, rules: [{record: 'x:y', expr: up}]}]\n")
    written = export(tmp_path / "out", {}, extra_rule_files=[own])
    assert [p.name for p in written] == [
        "codequal.rules.yml",
        "codequal.rules-2.yml",
        "alertmanager.yml",
    ]


def test_disk_horizon_rewrites_the_forecast_expression_and_text() -> None:
    shipped = load_rule_file(default_rule_files()[0])
    groups = with_disk_horizon(shipped, "8h")
    (rule,) = [r for g in groups for r in g.rules if r.name == "DeepWikiDiskExhaustionPredicted"]
    assert isinstance(rule, AlertingRule)
    assert rule.expr == "predict_linear(codequal_deepwiki_disk_available_bytes[1h], 8 * 3600) < 0"
    assert "within 8h" in rule.annotations["summary"]
    odd = with_disk_horizon(shipped, "90m")
    assert "5400) < 0" in next(r.expr for g in odd for r in g.rules if r.name == rule.name)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"CODEQUAL_SMTP_URL": "http://x", "CODEQUAL_ALERT_EMAIL_TO": "a@b"},
            "CODEQUAL_SMTP_URL is invalid",
        ),
        (
            {"CODEQUAL_SMTP_URL": "smtps://mail:2465", "CODEQUAL_ALERT_EMAIL_TO": "a@b"},
            "only on port 465",
        ),
    ],
)
def test_unusable_smtp_settings_are_explained(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        alertmanager_config(settings)


def test_bad_disk_horizon_is_explained() -> None:
    with pytest.raises(ExportError, match="disk horizon 'soon'"):
        with_disk_horizon([], "soon")
