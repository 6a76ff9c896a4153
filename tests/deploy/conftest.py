"""Shared helpers for the deployment tests: paths, YAML, Compose interpolation, the real tools.

Docker does not run here, so every deployment file is checked offline: against the schema or
model of the program that reads it, with that program's own checker where we have it
(promtool, amtool), and for consistency with each other and with CodeQual's settings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from codequal.config import Settings
from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.monitoring.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
KUBERNETES = DEPLOY / "kubernetes"
CODEQUAL = [sys.executable, "-m", "codequal"]

# Settings another engineer is adding to codequal.config right now (the Loki and Elasticsearch
# sinks of issue 7); drop a name from here once Settings has the field.
PENDING_SETTINGS = frozenset({"CODEQUAL_LOKI_URL", "CODEQUAL_ELASTICSEARCH_URL"})
SETTING_NAMES = frozenset(f"CODEQUAL_{name.upper()}" for name in Settings.model_fields)


def known_setting(variable: str) -> bool:
    return variable in SETTING_NAMES or variable in PENDING_SETTINGS


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def tool(name: str) -> str:
    """The path of a command-line tool CI installs (promtool, amtool); skip or fail without."""
    found = shutil.which(name)
    if found is None:
        service_missing(name, FileNotFoundError(f"{name} is not on PATH"))
    assert found is not None
    return found


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, **kwargs)


# -- Compose variable interpolation (the Compose specification's rules) ----------------------
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A required variable (``${VAR:?message}``) is missing."""


def strings(value: Any) -> Iterator[str]:
    """Every string value in parsed YAML (keys are not interpolated by Compose)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def compose_variables(data: Any, required_only: bool = False) -> set[str]:
    """Every variable the values of a Compose file refer to (only ``${VAR:?}`` ones if asked)."""
    return {
        m["braced"] or m["bare"]
        for text in strings(data)
        for m in _VARIABLE.finditer(text)
        if not m["escaped"] and (not required_only or m["op"] in (":?", "?"))
    }


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?err}``, ... replaced."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        current, op, arg = env.get(name), match["op"], match["arg"] or ""
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if unset else str(current)
        if op in (":?", "?"):
            if unset:
                raise InterpolationError(f"{name}: {arg}")
            return str(current)
        if op in (":+", "+"):
            return "" if unset else arg
        return "" if current is None else current

    return _VARIABLE.sub(substitute, value)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a Compose .env file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            key, sep, value = stripped.partition("=")
            assert sep, f"{path.name}: {line!r} is not KEY=VALUE"
            env[key.strip()] = value.strip()
    return env


def example_env() -> dict[str, str]:
    """.env.example with every empty (secret) value filled, as an operator's .env would be."""
    return {k: v or f"test-{k.lower()}" for k, v in read_env_file(ENV_EXAMPLE).items()}


def compose_raw() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


def compose() -> dict[str, Any]:
    """The Compose file as `docker compose config` would see it with .env.example filled in."""
    data = interpolate(compose_raw(), example_env())
    assert isinstance(data, dict)
    return data


# -- what `codequal rules export` and `codequal slo generate` write ---------------------------
@dataclass(frozen=True)
class Generated:
    """The output of the export commands, or why there is none."""

    root: Path

    @property
    def alertmanager(self) -> Path:
        return self.root / "alertmanager.yml"

    def rule_files(self) -> list[Path]:
        """Every YAML file the commands wrote but alertmanager.yml: all must be rule files."""
        return sorted(
            p
            for p in self.root.rglob("*")
            if p.suffix in (".yml", ".yaml") and p.name != "alertmanager.yml"
        )


def _cli(args: list[str], env: Mapping[str, str]) -> None:
    """Run a codequal command the deployment needs; a missing or failing command fails."""
    result = run([*CODEQUAL, *args], env={**os.environ, **env})
    assert result.returncode == 0, f"codequal {' '.join(args)} failed:\n{result.stderr}"


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """Run the export commands the Compose stack needs, into a temporary deploy/generated."""
    root = tmp_path_factory.mktemp("generated")
    env = {"CODEQUAL_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    _cli(["rules", "export", "--out", str(root)], env)
    _cli(["slo", "generate", "--out", str(root)], env)
    return Generated(root)
