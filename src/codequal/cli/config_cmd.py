"""``codequal config show``: the effective configuration, secrets masked."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
from rich.table import Table

from codequal.cli.common import config_options, output_console, settings_or_exit
from codequal.config import ENV_PREFIX, masked


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def show(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Print every setting in force (explicit > environment > file > default)."""
    settings = settings_or_exit(config_file, data_dir=data_dir)
    values = masked(settings)
    if as_json:
        click.echo(orjson.dumps(values, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("setting", "environment variable", "value")
    for name, value in values.items():
        table.add_row(name, f"{ENV_PREFIX}{name.upper()}", "" if value is None else str(value))
    output_console().print(table)
