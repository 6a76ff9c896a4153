"""DeepWiki: clones a repository into its workspace, profiles it, and cleans up after itself.

The cleanup tiers and the profile are pure functions; :class:`DeepWiki` is the shell that owns
the workspace directory and records every cleanup.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from codequal.analysis import repo
from codequal.analysis.policy import Remote
from codequal.analysis.store import CleanupLog
from codequal.telemetry.metrics import DEEPWIKI_ERRORS, repository_label

# Disk usage above which clones older than the age are removed: (ratio, seconds).
CLEANUP_TIERS = ((0.90, 30 * 60.0), (0.70, 2 * 3600.0), (0.50, 6 * 3600.0))
DEFAULT_MAX_AGE = 24 * 3600.0

LANGUAGES = {
    ".py": "Python", ".js": "JavaScript", ".jsx": "JavaScript", ".ts": "TypeScript",
    ".tsx": "TypeScript", ".go": "Go", ".rs": "Rust", ".java": "Java", ".kt": "Kotlin",
    ".rb": "Ruby", ".php": "PHP", ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++",
    ".hpp": "C++", ".cs": "C#", ".swift": "Swift", ".scala": "Scala", ".sh": "Shell",
    ".html": "HTML", ".css": "CSS", ".sql": "SQL", ".md": "Markdown", ".yml": "YAML",
    ".yaml": "YAML", ".json": "JSON", ".toml": "TOML",
}  # fmt: skip
MANIFESTS = frozenset(
    {
        "requirements.txt", "pyproject.toml", "setup.py", "setup.cfg", "Pipfile", "poetry.lock",
        "uv.lock", "package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml",
        "go.mod", "Cargo.toml", "Cargo.lock", "pom.xml", "build.gradle", "Gemfile",
        "composer.json",
    }
)  # fmt: skip


class DeepWikiError(repo.RepositoryError):
    error_type = "deepwiki"
    client_error = False  # our workspace, not the caller's repository


class DiskFullError(DeepWikiError):
    error_type = "disk_full"


class DiskUsage(NamedTuple):
    """A volume as ``df`` shows it: blocks in use, and blocks an unprivileged writer may use.

    Blocks reserved for root are neither, so ``used + free`` may be less than ``total`` (by 5 %
    on a default ext4, by much more on some volumes), and ``ratio`` is df's Use%: 1.0 exactly
    when the server can write nothing more, not when the reserve is all that is left.
    """

    total: int
    used: int
    free: int  # available to the server (statvfs f_bavail), not counting the root reserve

    @property
    def ratio(self) -> float:
        usable = self.used + self.free
        return self.used / usable if usable else 0.0


def max_age_for(usage_ratio: float) -> float:
    """The tiered policy: the fuller the volume, the younger the clones that get removed."""
    for threshold, age in CLEANUP_TIERS:
        if usage_ratio > threshold:
            return age
    return DEFAULT_MAX_AGE


def plan_cleanup(
    entries: Iterable[tuple[Path, float]], usage_ratio: float, now: float
) -> list[Path]:
    """Which workspace entries (path, last-modified) the sweep removes now."""
    limit = max_age_for(usage_ratio)
    return [path for path, mtime in entries if now - mtime > limit]


def profile_tree(root: Path) -> dict[str, Any]:
    """Languages, files, lines, size, dependency manifests and top-level structure."""
    languages: Counter[str] = Counter()
    language_lines: Counter[str] = Counter()
    files = lines = size = 0
    manifests: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts):
        files += 1
        size += path.stat().st_size
        rel = path.relative_to(root).as_posix()
        if path.name in MANIFESTS:
            manifests.append(rel)
        language = LANGUAGES.get(path.suffix.lower())
        if language is None:
            continue
        count = _count_lines(path)
        languages[language] += 1
        language_lines[language] += count
        lines += count
    top = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    primary = language_lines.most_common(1)[0][0] if language_lines else "unknown"
    return {
        "primaryLanguage": primary,
        "languages": {k: {"files": languages[k], "lines": language_lines[k]} for k in languages},
        "files": files,
        "lines": lines,
        "sizeBytes": size,
        "manifests": manifests,
        "topLevel": top,
        "sizeClass": size_class(lines),
    }


def size_class(lines: int) -> str:
    """The bounded ``repository_size`` label: small / medium / large / huge by lines of code."""
    if lines < 10_000:
        return "small"
    if lines < 100_000:
        return "medium"
    if lines < 1_000_000:
        return "large"
    return "huge"


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


@dataclass(frozen=True)
class Cleanup:
    path: str
    reason: str
    result: str  # success | failure
    bytes_freed: int
    error: str | None = None


class DeepWiki:
    """Owns the workspace: one directory per analysis, removed when the analysis ends."""

    def __init__(
        self,
        workspace: Path,
        cleanups: CleanupLog | None,
        *,
        clock: Callable[[], float] = time.time,
        disk_usage: Callable[[Path], DiskUsage] | None = None,
    ) -> None:
        self.workspace = workspace
        self._cleanups = cleanups
        self._clock = clock
        self._disk_usage = disk_usage or _disk_usage
        self.worker_alive: Callable[[], bool] = lambda: True

    def checkout(
        self,
        analysis_id: str,
        remote: Remote,
        timeout: float = 300.0,
        connect_timeout: float = 10.0,
    ) -> Path:
        """Clone ``remote`` for one analysis into a clean workspace entry (what an earlier
        attempt of a requeued job left is removed first); typed errors counted by type and
        repository."""
        entry = self.workspace / analysis_id
        if entry.exists():
            self._remove(entry, "previous-attempt")
        dest = entry / "repo.git"
        try:
            self.workspace.mkdir(parents=True, exist_ok=True)
            repo.clone(remote, dest, timeout, connect_timeout)
        except OSError as exc:
            self._count(exc, remote.source)
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(f"DeepWiki workspace is full: {exc}") from exc
            raise DeepWikiError(f"DeepWiki workspace error: {exc}") from exc
        except repo.RepositoryError as exc:
            self._count(exc, remote.source)
            raise
        return dest

    def tree(self, analysis_id: str, repo_dir: Path, sha: str, name: str) -> Path:
        try:
            return repo.materialise(repo_dir, sha, self.workspace / analysis_id / name)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(f"DeepWiki workspace is full: {exc}") from exc
            raise

    def release(self, analysis_id: str) -> Cleanup | None:
        path = self.workspace / analysis_id
        return self._remove(path, "analysis-finished") if path.exists() else None

    def sweep(self) -> list[Cleanup]:
        """Apply the tiered policy to every workspace entry left behind."""
        if not self.workspace.exists():
            return []
        usage = self._disk_usage(self.workspace)
        entries = [(p, p.stat().st_mtime) for p in self.workspace.iterdir() if p.is_dir()]
        reason = f"sweep-{int(max_age_for(usage.ratio))}s"
        return [self._remove(p, reason) for p in plan_cleanup(entries, usage.ratio, self._clock())]

    def _remove(self, path: Path, reason: str) -> Cleanup:
        try:
            cleanup = Cleanup(str(path), reason, "success", repo.remove_tree(path))
        except OSError as exc:
            cleanup = Cleanup(str(path), reason, "failure", 0, str(exc))
        self._record(cleanup)
        return cleanup

    def _record(self, cleanup: Cleanup) -> None:
        if self._cleanups is not None:
            self._cleanups.record({"ts": self._clock(), **cleanup.__dict__})

    def _count(self, exc: BaseException, source: str) -> None:
        error_type = getattr(exc, "error_type", None) or type(exc).__name__
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            error_type = "disk_full"
        DEEPWIKI_ERRORS.labels(error_type=error_type, repository=repository_label(source)).inc()

    # -- observations for the collector and the health check --------------------------------
    def disk(self) -> DiskUsage:
        self.workspace.mkdir(parents=True, exist_ok=True)
        return self._disk_usage(self.workspace)

    def active_repositories(self) -> int:
        if not self.workspace.exists():
            return 0
        return sum(1 for p in self.workspace.iterdir() if p.is_dir())

    def workspace_bytes_for(self, analysis_id: str) -> int:
        path = self.workspace / analysis_id
        return repo.directory_size(path) if path.exists() else 0

    def workspace_bytes(self) -> int:
        return repo.directory_size(self.workspace) if self.workspace.exists() else 0

    def available(self) -> bool:
        """1 when the workspace is writable, git runs and the worker is alive."""
        try:
            self.workspace.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.workspace, prefix=".probe-"):
                pass
            git = shutil.which("git")
            if git is None:
                return False
            subprocess.run([git, "--version"], capture_output=True, timeout=5, check=True)
        except (OSError, subprocess.SubprocessError):
            return False
        return self.worker_alive()

    def cleanup_counts(self) -> tuple[dict[str, int], float | None]:
        """Cleanups by result and the last cleanup time, from the recorded history."""
        return self._cleanups.counts() if self._cleanups is not None else ({}, None)


def _disk_usage(path: Path) -> DiskUsage:
    usage = shutil.disk_usage(path)  # used: blocks - free blocks; free: blocks for non-root
    return DiskUsage(usage.total, usage.used, usage.free)
