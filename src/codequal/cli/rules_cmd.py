"""``codequal rules``: check, unit-test and export alerting rules, as promtool does.

``check`` and ``test`` print what ``promtool check rules`` / ``promtool test rules`` print and
exit 0 when everything passed, 1 when a rule or test failed, and 2 (with a sentence) when an
input cannot be read at all. Without FILE arguments they use the shipped defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from codequal.alerting.cost_rules import RULES_FILE as COST_RULES_FILE
from codequal.alerting.cost_rules import cost_rules_for
from codequal.alerting.export import (
    ALERT_EMAIL_FROM,
    ALERT_EMAIL_TO,
    PAGERDUTY_ROUTING_KEY,
    PAGERDUTY_URL,
    SLACK_WEBHOOK_URL,
    SMTP_URL,
    WEBHOOK_URL,
    ExportError,
    export,
)
from codequal.alerting.routing import Timing
from codequal.alerting.rules import (
    RuleFileError,
    default_rule_files,
    expand_rule_paths,
    parse_rule_file,
)
from codequal.alerting.unittest import run_test_file
from codequal.cli.common import EXIT_USAGE, config_options, settings_or_exit
from codequal.config import Settings
from codequal.exceptions import ConfigError

EXIT_FAILED = 1


@click.group("rules")
def rules() -> None:
    """Check, unit-test and export alerting rules (Prometheus rule-file format)."""


def _readable(path: Path) -> str:
    """The file's text, or exit 2 saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        click.echo(f"codequal: cannot read {path}: {reason}.", err=True)
        sys.exit(EXIT_USAGE)


def _shipped_tests() -> list[Path]:
    return [
        p.with_name(p.name.replace(".rules.yml", ".rules.test.yml")) for p in default_rule_files()
    ]


@rules.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Validate rule files (default: the shipped rules)."""
    failed = False
    for path in files or tuple(default_rule_files()):
        text = _readable(path)
        click.echo(f"Checking {path}")
        try:
            groups = parse_rule_file(text, str(path))
        except RuleFileError as exc:
            click.echo("  FAILED:", err=True)
            for problem in exc.problems:
                click.echo(f"{path}: {problem}", err=True)
            failed = True
        else:
            click.echo(f"  SUCCESS: {sum(len(g.rules) for g in groups)} rules found")
        click.echo()
    sys.exit(EXIT_FAILED if failed else 0)


@rules.command("test")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def test(files: tuple[Path, ...]) -> None:
    """Run rule unit tests in `promtool test rules` format (default: the shipped tests)."""
    failed = False
    for path in files or tuple(_shipped_tests()):
        _readable(path)
        click.echo(f"Unit Testing:  {path}")
        result = run_test_file(path)
        for warning in result.warnings:
            click.echo(f"  WARNING: {warning}", err=True)
        if result.passed:
            click.echo("  SUCCESS")
        else:
            click.echo("  FAILED:", err=True)
            for error in result.errors:
                click.echo(error, err=True)
                click.echo()
            failed = True
        click.echo()
    sys.exit(EXIT_FAILED if failed else 0)


@rules.command("export")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the rule files and alertmanager.yml (created if missing).",
)
@click.option(
    "--base-url",
    default=None,
    help="CodeQual's URL, for absolute runbook links (default: CODEQUAL_EXTERNAL_URL).",
)
@click.option(
    "--disk-horizon",
    default=None,
    help="How far ahead the disk-exhaustion forecast looks, e.g. 8h (default 4h).",
)
@config_options
def export_command(
    out_dir: Path,
    base_url: str | None,
    disk_horizon: str | None,
    config_file: Path | None,
    data_dir: Path | None,
) -> None:
    """Write Prometheus rule files and an Alertmanager config for the configured channels.

    Operator rule files (CODEQUAL_RULE_FILES) are exported beside the shipped ones, and the
    cost alerts (CODEQUAL_DAILY_BUDGET, CODEQUAL_ANALYSIS_COST_ALERT) as codequal-costs.rules.yml.
    """
    settings = settings_or_exit(config_file, data_dir=data_dir)
    try:
        extra = expand_rule_paths((settings.rule_files or "").split(","))
    except RuleFileError as exc:
        click.echo(f"codequal: CODEQUAL_RULE_FILES: {exc}.", err=True)
        sys.exit(EXIT_USAGE)
    for path in extra:
        _readable(path)
    try:
        cost_rules = cost_rules_for(settings)  # the budget alerts, when budgets are set
    except ConfigError as exc:
        click.echo(f"codequal: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        written = export(
            out_dir,
            _channel_settings(settings),
            base_url=base_url or settings.external_url,
            disk_horizon=disk_horizon,
            extra_rule_files=extra,
            generated={COST_RULES_FILE: cost_rules} if cost_rules else None,
            timing=Timing(*settings.alert_timing),
        )
    except RuleFileError as exc:
        click.echo(f"codequal: rule files are invalid:\n{exc}", err=True)
        sys.exit(EXIT_FAILED)
    except (ExportError, OSError) as exc:
        click.echo(f"codequal: cannot export: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    for path in written:
        click.echo(str(path))


def _channel_settings(settings: Settings) -> dict[str, str | None]:
    def secret(name: str) -> str | None:
        value = getattr(settings, name)
        return value.get_secret_value() if value is not None else None

    return {
        SLACK_WEBHOOK_URL: secret("slack_webhook_url"),
        SMTP_URL: secret("smtp_url"),
        ALERT_EMAIL_TO: settings.alert_email_to,
        ALERT_EMAIL_FROM: settings.alert_email_from,
        PAGERDUTY_ROUTING_KEY: secret("pagerduty_routing_key"),
        PAGERDUTY_URL: settings.pagerduty_url,
        WEBHOOK_URL: secret("webhook_url"),
    }
