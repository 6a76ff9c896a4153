"""The ``codequal`` command."""

from __future__ import annotations

import click

from codequal import __version__
from codequal.cli.common import config_options
from codequal.cli.config_cmd import config
from codequal.cli.metrics_cmd import metrics
from codequal.cli.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codequal")
def main() -> None:
    """CodeQual: pull-request analysis that monitors itself."""


main.add_command(serve)
main.add_command(config)
main.add_command(metrics)

__all__ = ["config_options", "main"]
