"""The ``codequal`` command."""

from __future__ import annotations

import click

from codequal import __version__
from codequal.cli.analytics_cmd import costs, insights
from codequal.cli.analyze import analyze
from codequal.cli.anomaly_cmd import anomaly
from codequal.cli.common import config_options
from codequal.cli.config_cmd import config
from codequal.cli.keys_cmd import keys
from codequal.cli.metrics_cmd import metrics
from codequal.cli.rules_cmd import rules
from codequal.cli.serve import serve
from codequal.cli.slo_cmd import slo
from codequal.cli.token_cmd import token
from codequal.cli.tsdb_cmd import tsdb


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codequal")
def main() -> None:
    """CodeQual: pull-request analysis that monitors itself."""


main.add_command(serve)
main.add_command(analyze)
main.add_command(costs)
main.add_command(insights)
main.add_command(slo)
main.add_command(rules)
main.add_command(anomaly)
main.add_command(tsdb)
main.add_command(config)
main.add_command(metrics)
main.add_command(keys)
main.add_command(token)

__all__ = ["config_options", "main"]
