"""``codequal slo``: generate Prometheus rules from SLO specs."""

from __future__ import annotations

from pathlib import Path

import click

from codequal.analytics.slo import SLOSpecError, dump_rules, load_spec
from codequal.cli.common import EXIT_USAGE


@click.group()
def slo() -> None:
    """SLOs and error budgets."""


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
