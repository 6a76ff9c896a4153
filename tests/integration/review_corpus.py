"""Small real-looking repositories with known answers: what a diff-aware review must report.

Each case is a base commit on ``main`` and a head commit on ``feature``; the expected findings
are pinned to (file, line, rule). Line numbers are the head's.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

Files = dict[str, str | bytes | None]  # None deletes the path
Pin = tuple[str, int | None, str]  # file, line, rule


@dataclass(frozen=True)
class Case:
    name: str
    base: Files
    head: Files
    new: list[Pin]  # what the review reports
    existing: list[Pin] = field(default_factory=list)  # only with --all-findings
    status: str = "completed"
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # file, agent, reason


SERVICE = '''"""Upload service."""
import yaml


def load(path):
    with open(path) as fh:
        return fh.read()


def parse(text):
    try:
        return int(text)
    except:
        return 0
'''
NEW_BLOCK = """def config(text):
    try:
        return yaml.load(text)
    except:
        return None


"""
SERVICE_HEAD = SERVICE.replace("def parse(text):", NEW_BLOCK + "def parse(text):")

EVALUATOR = "def run(expression):\n    return eval(expression)\n"
BANNER = '"""Evaluates what the user types."""\n\nVERBOSE = False\nPROMPT = "> "\n\n'

SHELL = "import subprocess\n\n\ndef deploy(cmd):\n    return subprocess.call(cmd, shell=True)\n"

PY2 = """import yaml
from xml.dom import pulldom


def load(data):
    print "loading"
    doc = pulldom.parseString(data)
    return yaml.load(data), doc
"""

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4

CASES = [
    Case(
        "new finding on an added line, old one on an untouched line",
        {"app.py": SERVICE},
        {"app.py": SERVICE_HEAD},
        new=[("app.py", 12, "B506"), ("app.py", 13, "E722")],
        existing=[("app.py", 20, "E722")],
    ),
    Case(
        "a finding moved down by a block inserted above it",
        {"calc.py": EVALUATOR},
        {"calc.py": BANNER + EVALUATOR},
        new=[],
        existing=[("calc.py", 7, "B307")],
    ),
    Case(
        "a renamed file keeps its findings' identity",
        {"deploy_old.py": SHELL},
        {"deploy_old.py": None, "deploy.py": SHELL + "\n\nVERSION = 2\n"},
        new=[],
        existing=[("deploy.py", 1, "B404"), ("deploy.py", 5, "B602")],
    ),
    Case(
        "a Python 2 file is reported as not analysed, never as clean",
        {"README.md": "legacy code\n"},
        {"legacy.py": PY2},
        new=[("legacy.py", 6, "invalid-syntax")],
        status="partial",
        skipped=[
            ("legacy.py", "architecture", "syntax_error"),
            ("legacy.py", "codeQuality", "syntax_error"),
            ("legacy.py", "performance", "syntax_error"),
            ("legacy.py", "security", "syntax_error"),
        ],
    ),
    Case(
        "a binary file is listed, not analysed, and leaves the review complete",
        {"README.md": "logo below\n"},
        {"logo.png": PNG, "calc.py": EVALUATOR},
        new=[("calc.py", 2, "B307")],
        skipped=[("logo.png", "-", "binary")],
    ),
    Case(
        "a diff holding text that is not UTF-8 is analysed like any other",
        {"notes.txt": "caf\xe9\n".encode("latin-1")},
        {"notes.txt": "caf\xe9 cr\xe8me\n".encode("latin-1"), "calc.py": EVALUATOR},
        new=[("calc.py", 2, "B307")],
    ),
    Case(
        "vendored code excluded by the repository's .codequal.yml",
        {"README.md": "x\n"},
        {
            ".codequal.yml": "exclude:\n  - vendor/\n  - '*_pb2.py'\n",
            "vendor/lib.py": EVALUATOR,
            "api_pb2.py": EVALUATOR,
            "calc.py": EVALUATOR,
        },
        new=[("calc.py", 2, "B307")],
        skipped=[("api_pb2.py", "-", "excluded"), ("vendor/lib.py", "-", "excluded")],
    ),
]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def write(repo: Path, files: Files) -> None:
    for name, content in files.items():
        path = repo / name
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def build(root: Path, base: Files, head: Files) -> Path:
    """A repository with ``base`` on main and ``head`` applied on branch feature."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    write(repo, base)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    write(repo, head)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "head")
    git(repo, "checkout", "-q", "main")
    return repo
