"""``codequal slo``: SLO status from the metric history, and Prometheus rules from SLO specs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from codequal.analytics.reports import compute_slo
from codequal.analytics.slo import (
    SLOSpecError,
    dump_rules,
    load_spec,
)
from codequal.cli.analytics_cmd import _emit_json, _period
from codequal.cli.common import (
    EXIT_USAGE,
    config_options,
    open_store,
    output_console,
    settings_or_exit,
)
from codequal.tsdb.promql import SeriesSource
from codequal.tsdb.store import SampleStore

SHOWN_BURN_WINDOWS = ("5m", "1h", "6h", "1d", "3d")


@click.group(invoke_without_command=True)
@click.option("--since", default=None, help="Compliance period: 30m, 24h, 7d (default: SLO's).")
@click.option("--json", "as_json", is_flag=True)
@config_options
@click.pass_context
def slo(
    ctx: click.Context,
    since: str | None,
    as_json: bool,
    config_file: Path | None,
    data_dir: Path | None,
) -> None:
    """SLOs and error budgets (without a subcommand: ``status``)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(status, since=since, as_json=as_json, config_file=config_file, data_dir=data_dir)


@slo.command("status")
@click.option("--since", default=None, help="Compliance period: 30m, 24h, 7d (default: SLO's).")
@click.option("--json", "as_json", is_flag=True)
@config_options
def status(
    since: str | None, as_json: bool, config_file: Path | None, data_dir: Path | None
) -> None:
    """Each SLO's SLI, error budget remaining, burn rates and time to exhaustion."""
    window = None if since is None else f"{max(1, round(_period(since) / 60))}m"
    settings = settings_or_exit(config_file, data_dir=data_dir)
    db = open_store(settings)
    try:
        body = slo_status(SampleStore(db), time.time(), window)
    finally:
        db.dispose()
    if as_json:
        _emit_json({"slos": body})
        return
    _print_status(output_console(), body)


def slo_status(source: SeriesSource, now: float, window: str | None = None) -> list[dict[str, Any]]:
    """Each shipped SLO's status at ``now``; ``window`` replaces the SLOs' compliance period."""
    return compute_slo(source, now, window)


def _print_status(console: Console, body: list[dict[str, Any]]) -> None:
    burn_heads = [f"burn {w}" for w in SHOWN_BURN_WINDOWS]
    table = Table("SLO", "objective", "window", "SLI", "budget left", *burn_heads,
                  "exhausted in", title="SLO status")  # fmt: skip
    for s in body:
        budget = s["errorBudget"]["remainingRatio"]
        burns = [_num(s["burnRates"].get(w), "x") for w in SHOWN_BURN_WINDOWS]
        table.add_row(s["id"], f"{s['objective']:g}%", s["window"], _pct(s["sli"], 3),
                      _pct(budget, 1), *burns, _duration(s["timeToExhaustionSeconds"]))  # fmt: skip
    console.print(table)


def _pct(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


@slo.command("generate")
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the generated rule file (slo.rules.yml).",
)
def generate(spec: Path | None, out: Path) -> None:
    """Write recording and multiwindow burn-rate alerting rules for SPEC (default: shipped)."""
    try:
        slos = load_spec(spec)
    except SLOSpecError as exc:
        click.echo(f"codequal: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    out.mkdir(parents=True, exist_ok=True)
    target = out / "slo.rules.yml"
    target.write_text(dump_rules(slos), encoding="utf-8")
    click.echo(f"wrote {len(slos)} SLOs to {target}")
