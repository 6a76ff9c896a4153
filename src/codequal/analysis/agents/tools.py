"""Running a file-based linter (bandit, ruff) over a PR's changed files.

Head first; then base, only for the files where a finding on a changed line might be code
that merely moved (see :mod:`.baseline`). Files go to the tool in batches; a batch that
crashes or hangs is retried one file at a time, so the file a tool chokes on is skipped and
reported while the rest are still analysed. A tool that fails on every file is broken, and
that is the agent's error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from codequal.analysis.agents.base import (
    AgentError,
    AgentInput,
    AgentResult,
    AgentTimeout,
    ChangedFile,
    Deadline,
    Finding,
    LocalAgent,
    Skip,
    SkipReason,
    Unreadable,
    load_text,
    read_text,
    sort_findings,
)
from codequal.analysis.agents.baseline import classify, needs_base
from codequal.vocabulary import FindingSeverity

BATCH = 200  # paths per tool run: far below the OS argument limit
BROKEN_AFTER = 3  # single-file runs that all fail before the tool counts as broken


@dataclass
class ToolReport:
    """What one tool run said: items naming their file under ``"filename"``, and the files
    the tool itself says it could not read (path -> its reason)."""

    items: list[dict[str, object]] = field(default_factory=list)
    unread: dict[str, str] = field(default_factory=dict)

    def extend(self, other: ToolReport) -> None:
        self.items += other.items
        self.unread.update(other.unread)


#: Runs the tool on some absolute paths within a timeout.
ToolRun = Callable[[list[str], float], ToolReport]


@dataclass
class Outcome:
    report: ToolReport = field(default_factory=ToolReport)
    failed: dict[str, AgentError] = field(default_factory=dict)


def run_files(paths: list[str], run: ToolRun, deadline: Deadline, inp: AgentInput) -> Outcome:
    """Run the tool over ``paths`` in batches, falling back to one file at a time."""
    outcome = Outcome()
    for start in range(0, len(paths), BATCH):
        chunk = paths[start : start + BATCH]
        inp.progress.begin(None, start, len(paths))
        budget = min(deadline.remaining() / 2, inp.file_timeout * len(chunk))
        try:
            outcome.report.extend(run(chunk, budget))
        except AgentError:
            _one_by_one(chunk, run, deadline, inp.file_timeout, outcome=outcome)
    return outcome


def _one_by_one(
    chunk: list[str], run: ToolRun, deadline: Deadline, file_timeout: float, *, outcome: Outcome
) -> None:
    succeeded = False
    first: AgentError | None = None
    for path in chunk:
        budget = min(file_timeout, deadline.remaining())
        try:
            outcome.report.extend(run([path], budget))
            succeeded = True
        except AgentError as exc:
            first = first or exc
            outcome.failed[path] = exc
            if not succeeded and len(outcome.failed) >= BROKEN_AFTER:
                raise first from None
    if not succeeded and first is not None:
        raise first


def read_each(
    agent: LocalAgent,
    inp: AgentInput,
    files: Sequence[ChangedFile],
    skipped: list[Skip],
    deadline: Deadline | None = None,
) -> Iterator[tuple[ChangedFile, str]]:
    """Each file's head text in turn: the deadline checked and the supervisor told before
    each, a binary or oversized file added to ``skipped`` instead."""
    for index, changed in enumerate(files):
        if deadline is not None:
            deadline.remaining()
        inp.progress.begin(changed.path, index, len(files))
        text = load_text(inp.head_dir, changed.path)
        if isinstance(text, Unreadable):
            skipped.append(agent.skip(changed.path, text.reason, text.detail))
        elif text is not None:
            yield changed, text


@dataclass(frozen=True)
class Source:
    changed: ChangedFile
    text: str
    absolute: str


#: Turns one tool item into a finding on a head path (its line, rule and message).
ToFinding = Callable[[dict[str, object], str], Finding]


def lint_changed(
    agent: LocalAgent,
    inp: AgentInput,
    suffixes: tuple[str, ...],
    run: ToolRun,
    to_finding: ToFinding,
    *,
    could_hide: FindingSeverity | None = None,
) -> AgentResult:
    """The whole review of a file-based linter: read, run on head, run on base where it
    matters, classify new / existing, and account for every file. ``could_hide`` is the
    most severe finding this tool reports (the agent's ceiling by default)."""
    deadline = Deadline.start(agent.name, inp.timeout)
    sources, skipped = _sources(agent, inp, suffixes)
    if not sources:
        return AgentResult((), (), tuple(skipped))
    head = run_files([s.absolute for s in sources.values()], run, deadline, inp)
    skipped += _tool_skips(agent, sources, head)
    if could_hide is not None:
        skipped = [replace(s, could_hide=could_hide) for s in skipped]
    findings = _by_path(head.report, sources, to_finding)
    base_texts = _base_texts(inp, sources, findings)
    base = _base_findings(inp, base_texts, run, deadline, to_finding)
    classified: list[Finding] = []
    for path, source in sources.items():
        diff = inp.diff_of(source.changed, source.text)
        old = base_texts.get(path, ("", ""))[1]
        classified += classify(
            findings.get(path, []), base.get(path, []), diff,
            source.text.splitlines(), old.splitlines(),
        )  # fmt: skip
    done = tuple(p for p in sources if p not in {s.path for s in skipped})
    return AgentResult(tuple(sort_findings(classified)), done, tuple(skipped))


def _sources(
    agent: LocalAgent, inp: AgentInput, suffixes: tuple[str, ...]
) -> tuple[dict[str, Source], list[Skip]]:
    sources: dict[str, Source] = {}
    skipped: list[Skip] = []
    for changed in inp.present(suffixes):
        text = load_text(inp.head_dir, changed.path)
        if isinstance(text, Unreadable):
            skipped.append(agent.skip(changed.path, text.reason, text.detail))
        elif text is not None:
            absolute = str((inp.head_dir / changed.path).resolve())
            sources[changed.path] = Source(changed, text, absolute)
    return sources, skipped


def _tool_skips(agent: LocalAgent, sources: dict[str, Source], outcome: Outcome) -> list[Skip]:
    by_absolute = {s.absolute: path for path, s in sources.items()}
    skipped = []
    for absolute, exc in outcome.failed.items():
        reason: SkipReason = "timeout" if isinstance(exc, AgentTimeout) else "tool_error"
        skipped.append(agent.skip(by_absolute[absolute], reason, exc.message))
    for absolute, why in outcome.report.unread.items():
        if (path := by_absolute.get(resolved(absolute))) is not None:
            skipped.append(agent.skip(path, "syntax_error", why + python2_hint(sources[path].text)))
    return skipped


_PY2 = re.compile(r"^\s*(?:print\s+[\"'\w]|exec\s+[\"'\w]|except\s+[\w.]+\s*,\s*\w+\s*:)", re.M)


def python2_hint(text: str) -> str:
    """A note for files written for Python 2, which no Python 3 tool can parse."""
    return (
        "; the file looks like Python 2, which Python 3 tools cannot parse"
        if _PY2.search(text)
        else ""
    )


def _by_path(
    report: ToolReport, sources: dict[str, Source], to_finding: ToFinding
) -> dict[str, list[Finding]]:
    by_absolute = {s.absolute: path for path, s in sources.items()}
    found: dict[str, list[Finding]] = {}
    for item in report.items:
        path = by_absolute.get(resolved(str(item.get("filename", ""))))
        if path is not None:  # not a file we passed: nothing to attribute it to
            found.setdefault(path, []).append(to_finding(item, path))
    return found


def _base_texts(
    inp: AgentInput, sources: dict[str, Source], findings: dict[str, list[Finding]]
) -> dict[str, tuple[str, str]]:
    """(absolute base path, base text) of the files whose base findings are worth having."""
    wanted: dict[str, tuple[str, str]] = {}
    for path, source in sources.items():
        diff = inp.diff_of(source.changed, source.text)
        base_path = source.changed.base_path
        if (
            inp.base_dir is None
            or base_path is None
            or not needs_base(findings.get(path, []), diff)
        ):
            continue
        text = read_text(inp.base_dir, base_path)
        if text is not None:
            wanted[path] = (str((inp.base_dir / base_path).resolve()), text)
    return wanted


def _base_findings(
    inp: AgentInput,
    texts: dict[str, tuple[str, str]],
    run: ToolRun,
    deadline: Deadline,
    to_finding: ToFinding,
) -> dict[str, list[Finding]]:
    if not texts:
        return {}
    to_head = {absolute: path for path, (absolute, _) in texts.items()}
    try:
        report = run_files(list(to_head), run, deadline, inp).report
    except AgentError:
        return {}  # without base every touched finding stays new: the safe side
    found: dict[str, list[Finding]] = {}
    for item in report.items:
        path = to_head.get(resolved(str(item.get("filename", ""))))
        if path is not None:
            found.setdefault(path, []).append(to_finding(item, path))
    return found


def resolved(path: Path | str) -> str:
    return str(Path(path).resolve())
