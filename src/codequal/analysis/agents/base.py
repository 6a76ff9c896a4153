"""What every analysis agent shares: the records that flow in and out, errors, tool runner.

An agent is one module behind :class:`Agent`: it receives the checked-out head and base trees
of a pull request plus the changed files, and returns the findings the PR introduced.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol

from codequal.exceptions import AnalysisError
from codequal.vocabulary import FINDING_SEVERITIES, FindingSeverity

Severity = FindingSeverity
FileStatus = Literal["added", "modified", "deleted", "renamed"]

#: Most severe first.
SEVERITIES = FINDING_SEVERITIES
_RANK = {name: len(SEVERITIES) - i for i, name in enumerate(SEVERITIES)}

# Larger files are generated or data; scanning them costs time and finds nothing useful.
MAX_TEXT_BYTES = 1_000_000


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
    """One problem an agent found; ``line`` is None when it concerns the whole file."""

    severity: Severity
    file: str
    line: int | None
    rule: str
    message: str
    agent: str

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


#: A finding with the key that says what it is about without its line number (e.g. rule, file
#: and the line's content); base and head findings are compared by key.
Keyed = tuple[Finding, Hashable]


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


@dataclass(frozen=True)
class AgentInput:
    """Checked-out trees of the PR's head and base (None for a new repository), the files the
    PR changed, and the agent's time budget in seconds."""

    head_dir: Path
    base_dir: Path | None
    changed: tuple[ChangedFile, ...]
    timeout: float

    def present(self, suffixes: tuple[str, ...] = ()) -> list[ChangedFile]:
        """Changed regular files in head (deleted ones are ignored), optionally by suffix."""
        return [
            c
            for c in self.changed
            if c.status != "deleted"
            and (not suffixes or c.path.endswith(suffixes))
            and is_regular(self.head_dir / c.path)
        ]


class Agent(Protocol):
    """One analysis agent; ``provider`` is ``"local"`` for agents that need no LLM provider.

    Agents keep no state between runs, so one instance may run several analyses at once.
    """

    @property
    def name(self) -> str: ...

    @property
    def provider(self) -> str: ...

    def run(self, inp: AgentInput) -> list[Finding]: ...


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
    "ran fine" in ``ok_codes``; any other exit raises :class:`AgentError` with stderr.
    """
    tool = _tool_name(args)
    try:
        proc = subprocess.run(
            list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AgentTimeout(agent, f"{tool} did not finish within {timeout:.3g} s") from exc
    except OSError as exc:
        raise AgentError(agent, f"could not start {tool}: {exc}") from exc
    if proc.returncode not in ok_codes:
        stderr = proc.stderr.strip()[-2000:] or "(no stderr)"
        raise AgentError(agent, f"{tool} exited with code {proc.returncode}: {stderr}")
    return proc.stdout


def _tool_name(args: Sequence[str]) -> str:
    """``python -m bandit ...`` reads better in an error as ``bandit``."""
    if len(args) >= 3 and args[1] == "-m":
        return args[2]
    return Path(args[0]).name


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


def read_text(root: Path | None, rel: str | None) -> str | None:
    """A file's text, or None when it is missing, a symlink, binary or too large to be source."""
    if root is None or rel is None:
        return None
    path = root / rel
    try:
        if not is_regular(path) or path.stat().st_size > MAX_TEXT_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def normalise(line: str) -> str:
    """Source line content with whitespace collapsed, so re-indenting is not a change."""
    return " ".join(line.split())


def line_at(text: str | None, line: int | None) -> str:
    """The normalised content of a 1-based line ('' when unknown)."""
    if text is None or line is None:
        return ""
    lines = text.splitlines()
    return normalise(lines[line - 1]) if 0 < line <= len(lines) else ""


def introduced(head: Iterable[Keyed], base: Iterable[Hashable]) -> list[Finding]:
    """Head findings whose key base does not already have (a multiset difference), so code
    that only moved is not reported again."""
    seen = Counter(base)
    new: list[Finding] = []
    for finding, key in head:
        if seen[key] > 0:
            seen[key] -= 1
        else:
            new.append(finding)
    return new


@dataclass(frozen=True)
class Target:
    """One file handed to a tool: a changed file's head copy or its base copy."""

    is_head: bool
    root: Path
    path: str
    head_path: str

    @cached_property
    def text(self) -> str | None:
        return read_text(self.root, self.path)


def tool_targets(inp: AgentInput, suffixes: tuple[str, ...]) -> dict[str, Target]:
    """Head and base copies of the changed files, keyed by resolved absolute path.

    Tools get both trees in one run (one process start instead of two) and report each file
    by the path they were given, which this maps back to the head path.
    """
    targets: dict[str, Target] = {}
    for c in inp.present(suffixes):
        targets[resolved(inp.head_dir / c.path)] = Target(True, inp.head_dir, c.path, c.path)
        if inp.base_dir is not None and c.base_path is not None:
            old = inp.base_dir / c.base_path
            if is_regular(old):
                targets[resolved(old)] = Target(False, inp.base_dir, c.base_path, c.path)
    return targets


def resolved(path: Path | str) -> str:
    return str(Path(path).resolve())


ToolReport = Callable[[list[str]], list[dict[str, object]]]


def run_on_trees(
    targets: dict[str, Target],
    report: ToolReport,
    to_finding: Callable[[dict[str, object], Target], Keyed],
    batch: int = 200,
) -> tuple[list[Keyed], list[Hashable]]:
    """Run a tool over ``targets`` in batches; split its items into head findings and base keys.

    ``report`` runs the tool on some absolute paths and returns its items, each naming its
    file under ``"filename"``; batches keep command lines far below the OS argument limit.
    """
    head: list[Keyed] = []
    base: list[Hashable] = []
    paths = list(targets)
    for start in range(0, len(paths), batch):
        for item in report(paths[start : start + batch]):
            target = targets.get(resolved(str(item.get("filename", ""))))
            if target is None:  # not a file we passed: nothing to attribute it to
                continue
            finding, key = to_finding(item, target)
            if target.is_head:
                head.append((finding, key))
            else:
                base.append(key)
    return head, base


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Stable report order: by file, then line (file-level first), then rule."""
    return sorted(findings, key=lambda f: (f.file, f.line or 0, f.rule, f.message))
