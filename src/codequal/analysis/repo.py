"""Git plumbing for an analysis: fetch a repository, resolve refs, diff, materialise trees.

Every failure is a :class:`RepositoryError` subclass whose message tells the user what to fix
(a path that is not a repository, a ref that does not exist), so the CLI can exit 2 with it.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from codequal.analysis.agents.base import ChangedFile
from codequal.exceptions import AnalysisError

GIT_TIMEOUT = 300.0
_STATUS = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "added",
    "T": "modified",
}


class RepositoryError(AnalysisError):
    """The repository, a ref or a path cannot be used; the message says why."""

    error_type = "repository"


class CloneError(RepositoryError):
    error_type = "clone_failed"


class UnknownRefError(RepositoryError):
    error_type = "unknown_ref"


class GitTimeout(RepositoryError):
    error_type = "timeout"


@dataclass(frozen=True)
class Diff:
    base_sha: str
    head_sha: str
    changed: tuple[ChangedFile, ...]
    lines_added: int
    lines_deleted: int

    @property
    def lines_changed(self) -> int:
        return self.lines_added + self.lines_deleted


def git(*args: str, cwd: Path | None = None, timeout: float = GIT_TIMEOUT) -> str:
    """Run git without a shell or a terminal prompt; return stdout."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitTimeout(f"git {args[0]} took longer than {timeout:.0f} s") from None
    except FileNotFoundError:
        raise RepositoryError("git is not installed or not on PATH") from None
    if result.returncode != 0:
        raise RepositoryError(result.stderr.strip() or f"git {args[0]} failed")
    return result.stdout


def normalise_source(repository_url: str) -> str:
    """A local path or file:// URL becomes an absolute path; https / ssh URLs stay as they are.

    Raises RepositoryError for a path that does not exist or is not a git repository.
    """
    parsed = urlparse(repository_url)
    if parsed.scheme in ("http", "https", "ssh", "git"):
        return repository_url
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise RepositoryError(
            f"unsupported repository URL scheme {parsed.scheme!r}: use a local path, "
            "a file:// URL or an https URL"
        )
    else:
        path = Path(repository_url)
    path = path.expanduser().resolve()
    if not path.exists():
        raise RepositoryError(f"repository path {path} does not exist")
    if not os.access(path, os.R_OK):
        raise RepositoryError(f"repository path {path} is not readable")
    try:
        git("rev-parse", "--git-dir", cwd=path, timeout=30)
    except RepositoryError:
        raise RepositoryError(f"{path} is not a git repository") from None
    return str(path)


def clone(source: str, dest: Path, timeout: float = GIT_TIMEOUT) -> None:
    """Bare-clone ``source`` into ``dest`` with every branch and tag as a local ref."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        git("clone", "--bare", "--quiet", source, str(dest), timeout=timeout)
    except GitTimeout:
        raise
    except RepositoryError as exc:
        raise CloneError(f"cannot clone {source}: {exc}") from None


def resolve(repo: Path, ref: str) -> str:
    """The commit SHA ``ref`` names in ``repo``."""
    if ref.startswith("-"):
        raise UnknownRefError(f"ref {ref!r} is not a valid git ref")
    try:
        return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo).strip()
    except RepositoryError:
        raise UnknownRefError(
            f"ref {ref!r} does not exist in the repository (branches, tags and commit SHAs work)"
        ) from None


def diff(repo: Path, base_sha: str, head_sha: str) -> Diff:
    """Files and line counts that changed between base and head (three-dot: since the fork)."""
    merge_base = git("merge-base", base_sha, head_sha, cwd=repo).strip() or base_sha
    changed = []
    for line in git("diff", "--name-status", "-M", merge_base, head_sha, cwd=repo).splitlines():
        parts = line.split("\t")
        status = _STATUS.get(parts[0][:1], "modified")
        if status == "renamed":
            changed.append(ChangedFile(parts[2], "renamed", parts[1]))
        else:
            changed.append(ChangedFile(parts[1], status, None))  # type: ignore[arg-type]
    added = deleted = 0
    for line in git("diff", "--numstat", merge_base, head_sha, cwd=repo).splitlines():
        a, d, _ = line.split("\t", 2)
        added += int(a) if a.isdigit() else 0  # "-" for binary files
        deleted += int(d) if d.isdigit() else 0
    return Diff(merge_base, head_sha, tuple(changed), added, deleted)


def materialise(repo: Path, sha: str, dest: Path) -> Path:
    """Write the tree of commit ``sha`` into ``dest`` (no .git), via ``git archive``."""
    dest.mkdir(parents=True, exist_ok=True)
    data = subprocess.run(
        ["git", "archive", "--format=tar", sha],
        cwd=repo,
        capture_output=True,
        timeout=GIT_TIMEOUT,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest, filter="data")
    return dest


def remove_tree(path: Path) -> int:
    """Delete ``path``; return the bytes freed."""
    freed = directory_size(path)
    shutil.rmtree(path)
    return freed


def directory_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total
