"""The README's CLI table names every command and subcommand the CLI has."""

from __future__ import annotations

import re
from pathlib import Path

import click

from codequal.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def command_paths(group: click.Group, prefix: str = "codequal") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, path))
        else:
            paths.append(path)
    return paths


def listed_commands(table: str) -> set[str]:
    """Commands of the table's first column: `codequal keys create [...]` / `list` / `revoke`."""
    found = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.replace("\\|", "/").split("|")[1]  # an escaped | inside a cell is no border
        parts = re.findall(r"`([^`]+)`", cell)
        if not parts or not parts[0].startswith("codequal "):
            continue
        words = []
        for word in parts[0].split():
            if word[0] in "[-<" or word.isupper():
                break
            words.append(word)
        found.add(" ".join(words))
        found.update(" ".join([*words[:-1], leaf]) for leaf in parts[1:])
    return found


def test_every_cli_command_is_in_the_readme_cli_table() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("### CLI") : text.index("### Analyses")]
    missing = sorted(set(command_paths(main)) - listed_commands(table))
    assert missing == [], f"add these to the README's CLI table: {missing}"
