"""Real git repositories with a base and a head commit, checked out as agents receive them."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from codequal.analysis.agents.base import AgentInput, ChangedFile, parse_name_status

# Files of a commit: path -> content; in a head mapping, None deletes the path.
Files = Mapping[str, str | None]
MakePR = Callable[..., AgentInput]

GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
IDENTITY = ("-c", "user.name=CodeQual Test", "-c", "user.email=test@codequal.invalid")


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", *IDENTITY, "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        env=GIT_ENV,
        capture_output=True,
        check=True,
    ).stdout


def write_files(root: Path, files: Files) -> None:
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def commit(repo: Path, files: Files, message: str) -> str:
    write_files(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").decode().strip()


def checkout(repo: Path, ref: str, into: Path) -> Path:
    """A commit's tree as plain files, the way the orchestrator hands trees to agents."""
    archive = git(repo, "archive", "--format=tar", ref)
    into.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def changed_files(repo: Path, base: str | None, head: str) -> tuple[ChangedFile, ...]:
    if base is None:
        out = git(repo, "diff-tree", "--root", "--no-commit-id", "-r", "--name-status", head)
    else:
        out = git(repo, "diff", "--name-status", "-M", base, head)
    return parse_name_status(out.decode())


@pytest.fixture
def make_pr(tmp_path: Path) -> MakePR:
    """Build a repository: ``base`` files committed first (None: a new repository), then
    ``head`` applied on top; returns the agents' input for that pull request."""

    def build(base: Files | None, head: Files, timeout: float = 60.0) -> AgentInput:
        repo = tmp_path / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        base_ref = commit(repo, base, "base") if base is not None else None
        head_ref = commit(repo, head, "head")
        return AgentInput(
            head_dir=checkout(repo, head_ref, tmp_path / "head"),
            base_dir=checkout(repo, base_ref, tmp_path / "base") if base_ref else None,
            changed=changed_files(repo, base_ref, head_ref),
            timeout=timeout,
        )

    return build
