"""Which lines a pull request touched, read from ``git diff -U0``: the pure core of
diff-aware findings.

A finding is the PR's own when its line range touches an added or modified head line (the
"added lines" filter of reviewdog, SonarQube's "new code"); every other line of a changed file
is untouched, and an untouched head line maps back to exactly one base line through the
hunks. With ``-U0`` a hunk ``@@ -a,b +c,d @@`` replaces base lines ``a .. a+b-1`` with head
lines ``c .. c+d-1``; when ``b`` is 0 the ``d`` lines are inserted after base line ``a``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int

    @property
    def old_last(self) -> int:
        """The last base line this hunk replaces, or the line it inserts after."""
        return self.old_start + self.old_count - 1 if self.old_count else self.old_start


@dataclass(frozen=True)
class FileDiff:
    """One file's change: head path, base path (None when added) and its hunks."""

    path: str
    old_path: str | None
    hunks: tuple[Hunk, ...] = ()
    binary: bool = False

    def touched(self, first: int, last: int | None = None) -> bool:
        """Whether any head line in ``first .. last`` was added or modified."""
        last = first if last is None or last < first else last
        return any(
            h.new_count and h.new_start <= last and first <= h.new_start + h.new_count - 1
            for h in self.hunks
        )

    def to_head(self, old_line: int) -> int | None:
        """The head line an untouched base line became; None when the PR changed it."""
        shift = 0
        for h in self.hunks:
            if h.old_count and h.old_start <= old_line <= h.old_last:
                return None
            if h.old_last >= old_line:
                break
            shift += h.new_count - h.old_count
        return old_line + shift

    @property
    def removes_lines(self) -> bool:
        return any(h.old_count for h in self.hunks)


def parse_unified(text: str) -> dict[str, FileDiff]:
    """``git diff -U0 -M --src-prefix=a/ --dst-prefix=b/`` output, by head path (deleted
    files by their base path)."""
    files: dict[str, FileDiff] = {}
    for section in _sections(text):
        diff = _file_diff(section)
        if diff is not None:
            files[diff.path] = diff
    return files


def _sections(text: str) -> Iterator[list[str]]:
    current: list[str] = []
    for line in text.split("\n"):
        if line.startswith("diff --git ") and current:
            yield current
            current = []
        current.append(line)
    if current and current[0].startswith("diff --git "):
        yield current


def _file_diff(lines: list[str]) -> FileDiff | None:
    old = new = None
    hunks: list[Hunk] = []
    binary = added = False
    for line in lines[1:]:
        if line.startswith("@@"):
            hunks.append(_hunk(line))
        elif hunks:
            continue  # hunk bodies: -U0 gives only the +/- lines, nothing we need
        elif line.startswith(("--- ", "rename from ", "copy from ")):
            old = _path(line.split(" ", 2)[-1] if line.startswith("--- ") else line)
        elif line.startswith(("+++ ", "rename to ", "copy to ")):
            new = _path(line.split(" ", 2)[-1] if line.startswith("+++ ") else line)
        elif line.startswith("Binary files "):
            binary = True
        added = added or line.startswith("new file mode")
    if new is None and old is None:
        old = new = _header_path(lines[0])
    path = new or old
    old = None if added else old
    if path is None:
        return None
    return FileDiff(path, old, tuple(hunks), binary)


def _hunk(line: str) -> Hunk:
    m = _HUNK.match(line)
    if m is None:
        raise ValueError(f"unreadable hunk header {line!r}")
    a, b, c, d = m.groups()
    return Hunk(int(a), 1 if b is None else int(b), int(c), 1 if d is None else int(d))


def _path(field: str) -> str | None:
    """A path from a ``---``/``+++``/rename line; None for /dev/null."""
    for prefix in ("rename from ", "rename to ", "copy from ", "copy to "):
        if field.startswith(prefix):
            return unquote(field[len(prefix) :])
    if field == "/dev/null":
        return None
    value = unquote(field)
    return value[2:] if value[:2] in ("a/", "b/") else value


def _header_path(header: str) -> str | None:
    """The path of a mode-only change, from ``diff --git a/x b/x`` (both halves equal)."""
    rest = header[len("diff --git ") :]
    half = (len(rest) - 1) // 2
    if rest[:half][2:] == rest[half + 1 :][2:]:
        return unquote(rest[:half])[2:]
    return None


def unquote(value: str) -> str:
    """Undo git's C-style quoting of unusual paths (``"caf\\303\\251.py"``)."""
    if not (len(value) >= 2 and value[0] == value[-1] == '"'):
        return value
    out = bytearray()
    body, i = value[1:-1], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
        elif body[i + 1 : i + 4].isdigit():
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        else:
            nxt = body[i + 1]
            out += _ESCAPES.get(nxt, nxt).encode()
            i += 2
    return out.decode("utf-8", errors="surrogateescape")


def diff_lines(old: Sequence[str], new: Sequence[str], path: str, old_path: str | None) -> FileDiff:
    """The hunks between two versions of a file, for callers without git's diff."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    hunks = [
        # difflib's ranges are 0-based and half-open; -U0 hunks name the line before an
        # insertion (0 at the top of the file).
        Hunk(i1 + 1 if i2 > i1 else i1, i2 - i1, j1 + 1 if j2 > j1 else j1, j2 - j1)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]
    return FileDiff(path, old_path, tuple(hunks))
