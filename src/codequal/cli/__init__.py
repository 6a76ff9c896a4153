"""The ``codequal`` command.

Each subcommand is imported when it runs, not before: the server's imports take over a second,
and ``codequal --version`` or ``--help`` should not pay for them. :data:`COMMANDS` names each
command's module and its one-line help (a test keeps those in step with the commands).
"""

from __future__ import annotations

import importlib
import sys

import click

from codequal import __version__

EXIT_ENVIRONMENT = 2  # as for bad input: the sentence says what to fix

# name -> ("module:attribute", one-line help), in the order `--help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("codequal.cli.serve:serve", "Run the CodeQual server."),
    "analyze": (
        "codequal.cli.analyze:analyze",
        "Analyse the changes from BASE to HEAD in REPOSITORY (a path, file:// or https URL).",
    ),
    "costs": (
        "codequal.cli.analytics_cmd:costs",
        "What analyses cost over a period, and where to save.",
    ),
    "insights": (
        "codequal.cli.analytics_cmd:insights",
        "Where analysis time goes over a period, with recommendations.",
    ),
    "slo": ("codequal.cli.slo_cmd:slo", "SLOs and error budgets (without a subcommand: status)."),
    "rules": (
        "codequal.cli.rules_cmd:rules",
        "Check, unit-test and export alerting rules (Prometheus format).",
    ),
    "anomaly": ("codequal.cli.anomaly_cmd:anomaly", "Anomaly detection over metric series."),
    "tsdb": ("codequal.cli.tsdb_cmd:tsdb", "The embedded metric history rules and SLOs read."),
    "config": ("codequal.cli.config_cmd:config", "Inspect the configuration."),
    "metrics": ("codequal.cli.metrics_cmd:metrics", "The metrics CodeQual exposes on /metrics."),
    "keys": ("codequal.cli.keys_cmd:keys", "Service keys: bearer credentials for machines."),
    "token": ("codequal.cli.token_cmd:token", "Bearer tokens (JWT) for the API."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; an environment problem (a file, a disk, the database, a setting)
        ends it with one sentence on stderr and exit 2, not a traceback."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if not _environmental(exc):
                raise  # a bug: its traceback is what a report needs
            first = (str(exc).strip().splitlines() or [""])[0]
            click.echo(
                f"codequal: {ctx.invoked_subcommand}: {type(exc).__name__}: {first}", err=True
            )
            sys.exit(EXIT_ENVIRONMENT)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


def _environmental(exc: BaseException) -> bool:
    """Errors of the machine or its services rather than of CodeQual's code."""
    module = type(exc).__module__
    return isinstance(exc, OSError) or module.startswith(
        ("sqlalchemy", "psycopg", "redis", "codequal")
    )


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codequal")
def main() -> None:
    """CodeQual: pull-request analysis that monitors itself."""


__all__ = ["COMMANDS", "main"]
