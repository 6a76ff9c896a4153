"""`codequal --version` and `--help` load the command line only, not the server."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from codequal.cli import COMMANDS, main

PROBE = """
import sys
from codequal.cli import main
try:
    main([{arg!r}])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""
HEAVY = ("fastapi", "sqlalchemy", "opentelemetry", "pydantic", "codequal.api", "codequal.runtime")


@pytest.mark.parametrize("arg", ["--version", "--help"])
def test_version_and_help_import_nothing_of_the_server(arg: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(arg=arg)], capture_output=True, text=True, check=True
    )
    loaded = result.stdout.split("\n")[-2].split()
    assert not [m for m in loaded if m.startswith(HEAVY)], "imported at start-up"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_listed_command_loads_under_its_name(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Command)
    assert command.name == name


def test_an_unknown_command_is_the_usual_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codequal", "frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "No such command 'frobnicate'" in result.stderr
