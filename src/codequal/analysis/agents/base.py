"""What every analysis agent shares: the records that flow in and out, errors, deadlines.

An agent is one module behind :class:`Agent`: it receives the checked-out head and base trees
of a pull request plus the changed files, and returns an :class:`AgentResult`: every finding
it made on the changed files (each marked new or existing), the files it read, and the files
it could not read with the reason. :class:`LocalAgent` is the base the shipped agents share.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from codequal.analysis.diffmap import FileDiff, diff_lines
from codequal.exceptions import AnalysisError
from codequal.vocabulary import FINDING_SEVERITIES, FindingSeverity

Severity = FindingSeverity
FileStatus = Literal["added", "modified", "deleted", "renamed"]

#: Most severe first.
SEVERITIES = FINDING_SEVERITIES
_RANK = {name: len(SEVERITIES) - i for i, name in enumerate(SEVERITIES)}

# Larger files are generated or data; scanning them costs time and finds nothing useful.
MAX_TEXT_BYTES = 1_000_000

#: Why an agent did not read a changed file. The first four mean findings may be missing,
#: which makes the analysis ``partial``; binary and excluded files are not source to review.
SkipReason = Literal["syntax_error", "too_large", "tool_error", "timeout", "binary", "excluded"]
INCOMPLETE_REASONS: frozenset[str] = frozenset(
    {"syntax_error", "too_large", "tool_error", "timeout"}
)


def severity_at_least(a: Severity, b: Severity) -> bool:
    """True when ``a`` is as severe as ``b`` or more (``critical`` > ... > ``info``)."""
    return _RANK[a] >= _RANK[b]


def parse_severity(text: str) -> Severity:
    """Validate a user-supplied severity name (for ``--fail-on`` and API filters)."""
    for name in SEVERITIES:
        if text.strip().lower() == name:
            return name
    raise ValueError(f"unknown severity {text!r}; use one of {', '.join(SEVERITIES)}")


@dataclass(frozen=True)
class Finding:
    """One problem an agent found; ``line`` is None when it concerns the whole file.

    ``end_line`` closes the range the tool reported; ``new`` is False for a finding on code
    the PR did not touch ("existing"); ``fingerprint`` is its identity across commits.
    """

    severity: Severity
    file: str
    line: int | None
    rule: str
    message: str
    agent: str
    end_line: int | None = None
    new: bool = True
    fingerprint: str = ""
    help_uri: str | None = None

    def to_dict(self) -> dict[str, str | int | None]:
        """The report item: exactly severity, file, line, rule, message, agent."""
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "message": self.message,
            "agent": self.agent,
        }

    def to_record(self) -> dict[str, str | int | bool | None]:
        """What the store keeps: the report item plus range, state, identity and help link."""
        return {
            **self.to_dict(),
            "endLine": self.end_line,
            "new": self.new,
            "fingerprint": self.fingerprint,
            "helpUri": self.help_uri,
        }


@dataclass(frozen=True)
class Skip:
    """A changed file an agent did not (fully) read; ``could_hide`` is the most severe
    finding the agent could have reported in it."""

    path: str
    reason: SkipReason
    detail: str
    agent: str
    could_hide: Severity

    @property
    def incomplete(self) -> bool:
        return self.reason in INCOMPLETE_REASONS


@dataclass(frozen=True)
class AgentResult:
    findings: tuple[Finding, ...] = ()
    analysed: tuple[str, ...] = ()
    skipped: tuple[Skip, ...] = ()


@dataclass(frozen=True)
class ChangedFile:
    """A file the PR touched; paths are POSIX and relative to the repository root."""

    path: str
    status: FileStatus
    old_path: str | None = None

    @property
    def base_path(self) -> str | None:
        """Where the file lived in the base tree, or None when the PR added it."""
        if self.status == "added":
            return None
        return self.old_path or self.path


class Progress:
    """Where an agent says which file it works on; the worker process forwards it to the
    supervisor, which skips a file that holds a tool past its time."""

    def begin(self, path: str | None, index: int, total: int) -> None:
        """``path`` is None for a step that is not about one file (a tool over a batch)."""


@dataclass(frozen=True)
class AgentInput:
    """Checked-out trees of the PR's head and base (None for a new repository), the files the
    PR changed, and the agent's time budget in seconds.

    ``diffs`` holds git's hunks by head path (computed from the two trees when absent);
    ``skip`` names files a previous attempt hung on; ``file_timeout`` bounds one tool run.
    """

    head_dir: Path
    base_dir: Path | None
    changed: tuple[ChangedFile, ...]
    timeout: float
    diffs: Mapping[str, FileDiff] | None = None
    skip: frozenset[str] = frozenset()
    file_timeout: float = 60.0
    progress: Progress = field(default_factory=Progress)

    def present(self, suffixes: tuple[str, ...] = ()) -> list[ChangedFile]:
        """Changed regular files in head (deleted ones are ignored), optionally by suffix."""
        return [
            c
            for c in self.changed
            if c.status != "deleted"
            and c.path not in self.skip
            and (not suffixes or c.path.endswith(suffixes))
            and is_regular(self.head_dir / c.path)
        ]

    def diff_of(self, changed: ChangedFile, head: str) -> FileDiff:
        """The hunks of one file: git's when the orchestrator passed them, else difflib's
        between the two trees."""
        if self.diffs is not None and changed.path in self.diffs:
            return self.diffs[changed.path]
        base = read_text(self.base_dir, changed.base_path)
        old = [] if base is None else base.splitlines()
        return diff_lines(old, head.splitlines(), changed.path, changed.base_path)


class Agent(Protocol):
    """One analysis agent; ``provider`` is ``"local"`` for agents that need no LLM provider.

    Agents keep no state between runs, so one instance may run several analyses at once.
    """

    @property
    def name(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def ceiling(self) -> Severity: ...

    def review(self, inp: AgentInput) -> AgentResult: ...

    def run(self, inp: AgentInput) -> list[Finding]: ...


class LocalAgent:
    """The shipped agents: named by a class attribute, no LLM provider, and ``run`` as the
    new findings of ``review``."""

    name: ClassVar[str]
    #: The most severe finding the agent reports: what a file it skipped could hide.
    ceiling: ClassVar[Severity]
    provider: ClassVar[str] = "local"

    def review(self, inp: AgentInput) -> AgentResult:
        raise NotImplementedError

    def run(self, inp: AgentInput) -> list[Finding]:
        """The findings the PR introduced, in report order."""
        return sort_findings(f for f in self.review(inp).findings if f.new)

    def skip(self, path: str, reason: SkipReason, detail: str) -> Skip:
        return Skip(path, reason, detail, self.name, self.ceiling)


class AgentError(AnalysisError):
    """An agent could not finish: its tool crashed or produced output we cannot read."""

    def __init__(self, agent: str, message: str) -> None:
        super().__init__(f"{agent}: {message}")
        self.agent = agent
        self.message = message


class AgentTimeout(AgentError):
    """An agent ran out of its time budget; raise the analysis timeout or narrow the diff."""


@dataclass(frozen=True)
class Deadline:
    """The agent's time budget, checked between files and handed to each tool run."""

    agent: str
    timeout: float
    expires: float

    @classmethod
    def start(cls, agent: str, timeout: float) -> Deadline:
        return cls(agent, timeout, time.monotonic() + timeout)

    def remaining(self) -> float:
        """Seconds left; raises :class:`AgentTimeout` when none are."""
        left = self.expires - time.monotonic()
        if left <= 0:
            raise AgentTimeout(self.agent, f"did not finish within {self.timeout:g} s")
        return left


def parse_name_status(text: str) -> tuple[ChangedFile, ...]:
    """Parse ``git diff --name-status -M`` output into changed files.

    Accepts the ``-z`` form too (NUL-separated), which is the one to use for paths git would
    otherwise quote (non-ASCII, tabs, newlines).
    """
    if "\0" in text:
        tokens = [t for t in text.split("\0") if t]
    else:
        tokens = [t for line in text.splitlines() if line.strip() for t in line.split("\t")]
    changed: list[ChangedFile] = []
    at = 0
    while at < len(tokens):
        status = tokens[at]
        width = 2 if status[:1] in "RC" else 1  # renames and copies name two paths
        changed.append(_changed_file(status[:1], tokens[at + 1 : at + 1 + width]))
        at += 1 + width
    return tuple(changed)


def _changed_file(kind: str, paths: list[str]) -> ChangedFile:
    if kind == "R":
        return ChangedFile(paths[1], "renamed", paths[0])
    if kind in "AC":  # a copy is new content at a new path: treat it like an addition
        return ChangedFile(paths[-1], "added")
    if kind == "D":
        return ChangedFile(paths[0], "deleted")
    return ChangedFile(paths[0], "modified")  # M, T (type change), U (unmerged)


def is_regular(path: Path) -> bool:
    """A regular file and not a symlink: a PR can commit a link to any path on this host."""
    return path.is_file() and not path.is_symlink()


@dataclass(frozen=True)
class Unreadable:
    """Why :func:`load_text` returned no text."""

    reason: SkipReason
    detail: str


def load_text(root: Path | None, rel: str | None) -> str | Unreadable | None:
    """A file's text; :class:`Unreadable` when it is binary or too large to be source; None
    when it is missing or a symlink."""
    if root is None or rel is None:
        return None
    path = root / rel
    try:
        if not is_regular(path):
            return None
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            return Unreadable("too_large", f"{size} bytes, over the {MAX_TEXT_BYTES} read limit")
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return Unreadable("binary", "binary content")
    return data.decode("utf-8", errors="replace")


def read_text(root: Path | None, rel: str | None) -> str | None:
    """A file's text, or None when it is missing, a symlink, binary or too large to be source."""
    text = load_text(root, rel)
    return text if isinstance(text, str) else None


def normalise(line: str) -> str:
    """Source line content with whitespace collapsed, so re-indenting is not a change."""
    return " ".join(line.split())


def line_at(text: str | None, line: int | None) -> str:
    """The normalised content of a 1-based line ('' when unknown)."""
    if text is None or line is None:
        return ""
    lines = text.splitlines()
    return normalise(lines[line - 1]) if 0 < line <= len(lines) else ""


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Stable report order: by file, then line (file-level first), then rule."""
    return sorted(findings, key=lambda f: (f.file, f.line or 0, f.rule, f.message))


#: A finding with the key that says what it is about without its line number (e.g. rule and
#: dependency name); base and head findings are compared by key.
Keyed = tuple[Finding, Hashable]


def partition(
    head: Iterable[Keyed], base: Iterable[Hashable]
) -> tuple[list[Finding], list[Finding]]:
    """Head findings whose key base does not already have (a multiset difference), and the
    ones it does: (new, existing)."""
    seen = Counter(base)
    new: list[Finding] = []
    existing: list[Finding] = []
    for finding, key in head:
        if seen[key] > 0:
            seen[key] -= 1
            existing.append(finding)
        else:
            new.append(finding)
    return new, existing


def introduced(head: Iterable[Keyed], base: Iterable[Hashable]) -> list[Finding]:
    """The new half of :func:`partition`."""
    return partition(head, base)[0]


def run_tool(
    args: Sequence[str],
    cwd: Path,
    timeout: float,
    *,
    agent: str,
    ok_codes: tuple[int, ...] = (0,),
) -> str:
    """Run a tool without a shell and return its stdout.

    Linters exit non-zero when they find something, so callers list the codes that mean
    "ran fine" in ``ok_codes``; any other exit raises :class:`AgentError` with stderr. The
    tool runs in its own process group, and on timeout the whole group is killed: a linter
    that forks workers must not leave them running.
    """
    tool = _tool_name(args)
    try:
        proc = subprocess.Popen(
            list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise AgentError(agent, f"could not start {tool}: {exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AgentTimeout(agent, f"{tool} did not finish within {timeout:.3g} s") from None
    if proc.returncode not in ok_codes:
        stderr = err.strip()[-2000:] or "(no stderr)"
        raise AgentError(agent, f"{tool} exited with code {proc.returncode}: {stderr}")
    return out


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL a process started with ``start_new_session`` and everything it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _tool_name(args: Sequence[str]) -> str:
    """``python -m bandit ...`` reads better in an error as ``bandit``."""
    if len(args) >= 3 and args[1] == "-m":
        return args[2]
    return Path(args[0]).name
