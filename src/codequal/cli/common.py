"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from codequal.config import Settings, load_settings
from codequal.exceptions import ConfigError
from codequal.runtime.startup import database_sentence
from codequal.storage.db import Database, open_database

F = TypeVar("F", bound=Callable[..., Any])

# Exit code for "you gave me something I cannot use" (bad configuration, bad input).
EXIT_USAGE = 2
# Columns for tables when standard output is a pipe or a file rather than a terminal.
PIPED_WIDTH = 240


def config_options(fn: F) -> F:
    """``--config`` and ``--data-dir``: every command that touches storage takes them."""
    fn = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where embedded storage lives (default ./.codequal; env CODEQUAL_DATA_DIR).",
    )(fn)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="YAML file with settings (environment variables take precedence).",
    )(fn)


def settings_or_exit(config_file: Path | None, **explicit: Any) -> Settings:
    """Load settings; on a bad value print the one-sentence reason and exit 2."""
    try:
        return load_settings(config_file, **explicit)
    except ConfigError as exc:
        click.echo(f"codequal: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def output_console() -> Console:
    """Standard output for rich tables: the terminal's width, or PIPED_WIDTH columns when piped.

    Without a terminal rich falls back to 80 columns and cuts cells to fit ("cod…" for an SLO
    name), which is useless in a CI log or a file and for grep; there is no width to respect.
    """
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def open_store(settings: Settings) -> Database:
    """The configured database, migrated; on a damaged, unreadable or unreachable database
    print one sentence saying what to fix and exit 2 (no traceback)."""
    db = open_database(settings.resolved_database_url)
    try:
        db.migrate()
    except Exception as exc:  # noqa: BLE001 - any failure here is the environment's
        db.dispose()
        click.echo(f"codequal: cannot use the database: {database_sentence(db, exc)}.", err=True)
        sys.exit(EXIT_USAGE)
    return db
