"""``codequal costs`` and ``codequal insights``: the analytics of a period as tables or JSON."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from codequal.analytics.reports import compute_insights
from codequal.analytics.store import parse_period
from codequal.cli.common import (
    EXIT_USAGE,
    config_options,
    open_store,
    output_console,
    settings_or_exit,
)
from codequal.runtime.wiring import compute_costs_for


def _period(text: str) -> float:
    try:
        return parse_period(text)
    except ValueError as exc:
        click.echo(f"codequal: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None


def _emit_json(body: dict[str, Any]) -> None:
    click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


@click.command()
@click.option("--since", default="7d", show_default=True, help="Period: 30m, 24h, 7d, 2w.")
@click.option("--json", "as_json", is_flag=True)
@config_options
def costs(since: str, as_json: bool, config_file: Path | None, data_dir: Path | None) -> None:
    """What analyses cost over a period, and where to save."""
    period = _period(since)
    settings = settings_or_exit(config_file, data_dir=data_dir)
    db = open_store(settings)
    body = compute_costs_for(settings, db, period, time.time())
    db.dispose()
    if as_json:
        _emit_json(body)
        return
    console = output_console()
    dist = body["perAnalysis"]
    console.print(f"[bold]${body['total']:.4f}[/] over {dist['analyses']} analyses ({since})")
    _table(console, "by component", body["byComponent"])
    _table(console, "by mode", body["byMode"])
    _table(console, "by provider", body["byProvider"])
    _table(console, "by agent", body["byAgent"])
    for s in body["suggestions"]:
        console.print(
            f"• {s['action']}: {s['detail']} (≈ ${s['projectedMonthlySaving']:.2f}/month)"
        )


@click.command()
@click.option("--since", default="7d", show_default=True, help="Period: 30m, 24h, 7d, 2w.")
@click.option("--json", "as_json", is_flag=True)
@config_options
def insights(since: str, as_json: bool, config_file: Path | None, data_dir: Path | None) -> None:
    """Where analysis time goes over a period, with recommendations."""
    period = _period(since)
    settings = settings_or_exit(config_file, data_dir=data_dir)
    db = open_store(settings)
    body = compute_insights(db, period, time.time())
    db.dispose()
    if as_json:
        _emit_json(body)
        return
    console = output_console()
    table = Table("agent", "runs", "p50 s", "p95 s", "share of time", title="slowest agents")
    for a in body["slowestAgents"]:
        table.add_row(a["agent"], str(a["runs"]), _num(a["p50"]), _num(a["p95"]),
                      _pct(a["shareOfAnalysisTime"]))  # fmt: skip
    console.print(table)
    steps = Table("step", "critical-path s", "share", title="bottlenecks")
    for b in body["bottlenecks"]:
        steps.add_row(b["step"], _num(b["criticalPathSeconds"]), _pct(b["share"]))
    console.print(steps)
    for line in body["recommendations"]:
        console.print(f"• {line}")


def _table(console: Console, title: str, values: dict[str, float]) -> None:
    table = Table("name", "dollars", title=title)
    for name, dollars in values.items():
        table.add_row(name, f"{dollars:.6f}")
    console.print(table)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
