"""``codequal metrics``: the metric catalogue, as a table, Markdown (docs/metrics.md) or JSON."""

from __future__ import annotations

import json

import click
from rich.table import Table

import codequal.analysis.collector  # noqa: F401 - registers the DeepWiki families
from codequal.cli.common import output_console
from codequal.telemetry.metrics import MetricInfo, catalogue, format_buckets, render_markdown

FORMATS = ("table", "markdown", "json")


@click.group("metrics")
def metrics() -> None:
    """The metrics CodeQual exposes on /metrics."""


@metrics.command("list")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="markdown is docs/metrics.md; json is one object per metric.",
)
def list_metrics(output_format: str) -> None:
    """Print every metric: name, type, labels, buckets, help."""
    infos = catalogue()
    if output_format == "markdown":
        click.echo(render_markdown(infos), nl=False)
    elif output_format == "json":
        click.echo(json.dumps([info._asdict() for info in infos], indent=2))
    else:
        output_console().print(_table(infos))


def _table(infos: list[MetricInfo]) -> Table:
    table = Table(title="CodeQual metrics", show_lines=False)
    # Names are what people copy into PromQL: never wrap them.
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("type", no_wrap=True)
    table.add_column("labels", overflow="fold")
    table.add_column("buckets", overflow="fold")
    table.add_column("help", overflow="fold")
    for info in infos:
        table.add_row(
            info.name, info.type, ", ".join(info.labels), format_buckets(info.buckets), info.help
        )
    return table
