"""``codequal tsdb``: the embedded metric history (backfill from OpenMetrics)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import sqlalchemy as sa

from codequal.cli.common import EXIT_USAGE, config_options, open_store, settings_or_exit
from codequal.tsdb.openmetrics import OpenMetricsError
from codequal.tsdb.openmetrics_import import ImportReport, import_openmetrics

EXIT_FAILURE = 1


@click.group("tsdb")
def tsdb() -> None:
    """The embedded metric history that rules, SLOs and /api/v1/query read."""


@tsdb.command("import")
@config_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_file(config_file: Path | None, data_dir: Path | None, file: Path) -> None:
    """Backfill history from FILE, OpenMetrics text with timestamps (what
    `promtool tsdb create-blocks-from openmetrics` reads). All or nothing: a file with a bad
    line is reported line by line and nothing is stored."""
    settings = settings_or_exit(config_file, data_dir=data_dir)
    db = open_store(settings)
    try:
        report = import_openmetrics(db, file)
    except OpenMetricsError as exc:
        _report_problems(file, exc)
        sys.exit(EXIT_USAGE)
    except sa.exc.SQLAlchemyError as exc:
        # First line only: the rest is the SQL and its parameters.
        click.echo(f"codequal: cannot use the database: {str(exc).splitlines()[0]}", err=True)
        sys.exit(EXIT_FAILURE)
    finally:
        db.dispose()
    click.echo(_summary(file, report))


def _report_problems(file: Path, exc: OpenMetricsError) -> None:
    click.echo(f"codequal: {file} was not imported (nothing was stored):", err=True)
    for problem in exc.problems:
        click.echo(f"  {file}:{problem.line}: {problem.message}", err=True)
    if exc.total > len(exc.problems):
        click.echo(f"  ... and {exc.total - len(exc.problems)} more problems", err=True)


def _summary(file: Path, report: ImportReport) -> str:
    if report.min_t is None or report.max_t is None:
        return f"{file}: no samples; nothing to import"
    return (
        f"imported {report.samples} samples of {report.series} series from {file} "
        f"({_iso(report.min_t)} .. {_iso(report.max_t)}) in {report.chunks} chunks"
    )


def _iso(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).isoformat(timespec="seconds")
