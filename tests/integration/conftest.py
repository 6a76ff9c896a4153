"""Real git repositories with planted problems, for the pipeline tests."""

from __future__ import annotations

import random
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CLEAN_APP = '''"""A small service."""


def add(a: int, b: int) -> int:
    return a + b
'''

# A key id of the AWS shape that is not the documented example key, so scanners cannot
# dismiss it as a placeholder.
AWS_KEY = "AKIA" + "".join(
    random.Random(7).choices(string.ascii_uppercase + "234567", k=16)  # noqa: S311 - test data
)

RISKY_APP = f'''"""A small service."""

import subprocess

AWS_ACCESS_KEY_ID = "{AWS_KEY}"


def add(a: int, b: int) -> int:
    return a + b


def run(cmd: str) -> int:
    return subprocess.run(cmd, shell=True, check=False).returncode
'''


# Cyclomatic complexity 22: a chain of independent branches.
COMPLEX = (
    "def grade(x: int) -> int:\n    score = 0\n"
    + "".join(f"    if x > {i}:\n        score += {i}\n" for i in range(21))
    + "    return score\n"
)

CYCLE_A = "from pkg import b\n\n\ndef a() -> int:\n    return b.b()\n"
CYCLE_B = (
    "from pkg import a\n\n\ndef b() -> int:\n    return 1\n\n\ndef c() -> int:\n    return a.a()\n"
)


@pytest.fixture(autouse=True)
def repositories_under_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server analyses local paths only under CODEQUAL_REPOSITORY_ROOTS: the tests'
    repositories live under pytest's temporary directory, so that is the root."""
    monkeypatch.setenv("CODEQUAL_REPOSITORY_ROOTS", str(tmp_path_factory.getbasetemp()))


@dataclass(frozen=True)
class PlantedRepo:
    path: Path
    base: str = "main"
    head: str = "feature"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit_files(repo: Path, files: dict[str, str], message: str) -> None:
    for name, content in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def planted_repo(tmp_path: Path) -> PlantedRepo:
    """main: a clean app; feature: a hard-coded AWS key, shell=True, an unpinned dependency,
    a very complex function and an import cycle."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"app.py": CLEAN_APP, "requirements.txt": "requests==2.31.0\n"}, "base")
    git(repo, "checkout", "-q", "-b", "feature")
    commit_files(
        repo,
        {
            "app.py": RISKY_APP,
            "requirements.txt": "requests==2.31.0\nflask\n",
            "grading.py": COMPLEX,
            "pkg/__init__.py": "",
            "pkg/a.py": CYCLE_A,
            "pkg/b.py": CYCLE_B,
        },
        "add a runner",
    )
    git(repo, "checkout", "-q", "main")
    return PlantedRepo(repo)
