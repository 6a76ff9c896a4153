"""New or existing: which findings of a changed file the pull request introduced (pure).

A finding is the PR's when its line range touches a line the PR added or modified, as
reviewdog's "added lines" filter and SonarQube's "new code" decide; a finding on an untouched
line is existing. One exception keeps moved and re-indented code quiet: a finding on a changed
line whose fingerprint (rule, file, and the normalised code around it) base had on a line the
PR removed or changed is the same finding, moved. Renamed files compare under their head path,
so their findings keep their identity.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace

from codequal.analysis.agents.base import Finding, normalise
from codequal.analysis.diffmap import FileDiff


def context(lines: Sequence[str], line: int | None) -> tuple[str, ...]:
    """The normalised line and its nearest non-blank neighbours (blank lines and indentation
    moving around do not change it)."""
    if line is None or not 0 < line <= len(lines):
        return ()
    at = line - 1
    before = next((normalise(x) for x in reversed(lines[:at]) if x.strip()), "")
    after = next((normalise(x) for x in lines[at + 1 :] if x.strip()), "")
    return before, normalise(lines[at]), after


def fingerprint(rule: str, path: str, lines: Sequence[str], line: int | None) -> str:
    """A finding's identity: rule, file and the code around it, never the line number."""
    text = "\0".join((rule, path, *context(lines, line)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def is_touched(finding: Finding, diff: FileDiff) -> bool:
    """Whether the finding's range meets an added or modified line (whole-file ones always)."""
    return finding.line is None or diff.touched(finding.line, finding.end_line)


def needs_base(head: Iterable[Finding], diff: FileDiff) -> bool:
    """Whether base's findings of this file could turn a touched head finding into a moved one."""
    if diff.old_path is None:
        return False
    return any(is_touched(f, diff) and (f.line is None or diff.removes_lines) for f in head)


def classify(
    head: Iterable[Finding],
    base: Iterable[Finding],
    diff: FileDiff,
    head_lines: Sequence[str],
    base_lines: Sequence[str],
) -> list[Finding]:
    """Head findings of one file, each with ``new`` and ``fingerprint`` set.

    ``base`` are the same tool's findings on the file's base version (any path: they are
    compared under the head path); only those on lines the PR removed or changed can match.
    """
    pool = Counter(
        fingerprint(f.rule, diff.path, base_lines, f.line)
        for f in base
        if f.line is None or diff.to_head(f.line) is None
    )
    out: list[Finding] = []
    for finding in head:
        mark = fingerprint(finding.rule, diff.path, head_lines, finding.line)
        new = is_touched(finding, diff)
        if new and pool[mark] > 0:
            pool[mark] -= 1
            new = False
        out.append(replace(finding, new=new, fingerprint=mark))
    return out


def stamp(findings: Iterable[Finding], lines: Sequence[str]) -> list[Finding]:
    """Fingerprints for findings an agent classified itself (by meaning, not by line)."""
    return [
        replace(f, fingerprint=f.fingerprint or fingerprint(f.rule, f.file, lines, f.line))
        for f in findings
    ]
