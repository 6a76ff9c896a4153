"""performance agent (complexity): radon cyclomatic complexity and maintainability index.

A function is reported when its complexity is above the threshold and it is new in the PR or
more complex than the function of the same qualified name in base; a changed file is
reported when its maintainability index is below the threshold and lower than in base.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from radon.complexity import cc_visit  # type: ignore[import-untyped]
from radon.metrics import mi_visit  # type: ignore[import-untyped]

from codequal.analysis.agents.base import (
    AgentInput,
    AgentResult,
    ChangedFile,
    Deadline,
    Finding,
    LocalAgent,
    Severity,
    Skip,
    read_text,
    sort_findings,
)
from codequal.analysis.agents.baseline import stamp
from codequal.analysis.agents.tools import python2_hint, read_each

AGENT = "performance"

#: Cyclomatic complexity above which a function is medium, and above which it is high.
CC_MEDIUM = 10
CC_HIGH = 20
#: Maintainability index (0..100) below which a file is hard to maintain (radon's rank C).
MI_LOW = 10.0


@dataclass(frozen=True)
class Block:
    """A function or method: qualified name (``Class.method``), first line, complexity."""

    name: str
    line: int
    complexity: int
    end: int | None = None


def blocks(source: str) -> dict[str, Block]:
    """Every function, method and closure in ``source`` by qualified name."""
    found: dict[str, Block] = {}
    for item in cc_visit(source):
        for block in _flatten(item, ""):
            # Two definitions with one name (e.g. under if/else): keep the worse one.
            if block.name not in found or block.complexity > found[block.name].complexity:
                found[block.name] = block
    return found


def _flatten(item: object, prefix: str) -> Iterator[Block]:
    """radon lists top-level functions and methods; closures and inner classes nest."""
    name = str(getattr(item, "name", ""))
    if hasattr(item, "methods"):  # a class: its methods are already top-level items
        for inner in getattr(item, "inner_classes", []):
            for method in inner.methods:
                yield from _flatten(method, f"{prefix}{name}.")
            yield from _flatten(inner, f"{prefix}{name}.")
        return
    full = prefix + str(getattr(item, "fullname", name))
    end = getattr(item, "endline", None)
    yield Block(
        full, int(getattr(item, "lineno", 0)), int(getattr(item, "complexity", 0)),
        int(end) if end is not None else None,
    )  # fmt: skip
    for closure in getattr(item, "closures", []):
        yield from _flatten(closure, f"{full}.")


def complexity_findings(
    path: str, head: str, base: str | None, medium: int = CC_MEDIUM, high: int = CC_HIGH
) -> list[Finding]:
    """Functions over the threshold that are new, or worse than in ``base``."""
    try:
        now = blocks(head)
    except SyntaxError:
        return []  # codeQuality reports the syntax error itself
    return [f for f in assess_complexity(path, now, _safe_blocks(base), medium, high) if f.new]


def assess_complexity(
    path: str, now: dict[str, Block], before: dict[str, Block], medium: int, high: int
) -> list[Finding]:
    """Every function over the threshold; new when base had none of that name or a
    simpler one, existing otherwise."""
    findings = []
    for block in now.values():
        if block.complexity <= medium:
            continue
        old = before.get(block.name)
        severity: Severity = "high" if block.complexity > high else "medium"
        was = f", was {old.complexity} in base" if old else ""
        message = (
            f"`{block.name}` has cyclomatic complexity {block.complexity} "
            f"(threshold {medium}{was}); split it into smaller functions"
        )
        findings.append(
            Finding(
                severity, path, block.line, "cyclomatic-complexity", message, AGENT,
                end_line=block.end, new=old is None or old.complexity < block.complexity,
            )
        )  # fmt: skip
    return findings


def _safe_blocks(source: str | None) -> dict[str, Block]:
    if source is None:
        return {}
    try:
        return blocks(source)
    except SyntaxError:
        return {}


def maintainability(source: str) -> float | None:
    """radon's maintainability index (0..100), or None when the source does not parse."""
    try:
        return float(mi_visit(source, multi=True))
    except SyntaxError:
        return None


def maintainability_findings(
    path: str, head: str, base: str | None, threshold: float = MI_LOW
) -> list[Finding]:
    """A changed file whose index is below ``threshold`` and lower than it was in base."""
    return [f for f in assess_maintainability(path, head, base, threshold) if f.new]


def assess_maintainability(
    path: str, head: str, base: str | None, threshold: float
) -> list[Finding]:
    """The file-level finding when its index is below ``threshold``: new when base was
    better (or absent), existing otherwise."""
    now = maintainability(head)
    if now is None or now >= threshold:
        return []
    before = maintainability(base) if base is not None else None
    was = f", was {before:.1f} in base" if before is not None else ""
    message = f"maintainability index {now:.1f} is below {threshold:g}{was}"
    new = before is None or before > now
    return [Finding("low", path, None, "maintainability-index", message, AGENT, new=new)]


@dataclass(frozen=True)
class PerformanceAgent(LocalAgent):
    """Complexity checks with radon's library API (no tool process of its own)."""

    name: ClassVar[str] = AGENT
    ceiling: ClassVar[Severity] = "high"
    cc_medium: int = CC_MEDIUM
    cc_high: int = CC_HIGH
    mi_low: float = MI_LOW

    def review(self, inp: AgentInput) -> AgentResult:
        deadline = Deadline.start(AGENT, inp.timeout)
        findings: list[Finding] = []
        analysed: list[str] = []
        skipped: list[Skip] = []
        files = inp.present((".py",))
        for changed, head in read_each(self, inp, files, skipped, deadline):
            try:
                found = self._file(inp, changed, head)
            except SyntaxError as exc:
                detail = f"radon: {exc.msg} at line {exc.lineno}" + python2_hint(head)
                skipped.append(self.skip(changed.path, "syntax_error", detail))
                continue
            findings += stamp(found, head.splitlines())
            analysed.append(changed.path)
        return AgentResult(tuple(sort_findings(findings)), tuple(analysed), tuple(skipped))

    def _file(self, inp: AgentInput, changed: ChangedFile, head: str) -> list[Finding]:
        now = blocks(head)
        worth = any(b.complexity > self.cc_medium for b in now.values())
        index = maintainability(head)
        low = index is not None and index < self.mi_low
        base = read_text(inp.base_dir, changed.base_path) if worth or low else None
        found = assess_complexity(
            changed.path, now, _safe_blocks(base), self.cc_medium, self.cc_high
        )
        if low:
            found += assess_maintainability(changed.path, head, base, self.mi_low)
        return found
