"""codeQuality agent: ruff on the changed Python files.

A violation is new when it sits on a line the PR added or modified (see :mod:`.baseline`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import ClassVar

from codequal.analysis.agents.base import (
    AgentError,
    AgentInput,
    AgentResult,
    Finding,
    LocalAgent,
    Severity,
    run_tool,
)
from codequal.analysis.agents.tools import ToolReport, lint_changed

AGENT = "codeQuality"

# --isolated ignores the analysed repository's own config so results do not depend on it.
# E/W/F: pycodestyle and pyflakes; B: bugbear (likely bugs); C4, SIM, PIE: simpler idioms.
SELECT = "E,W,F,B,C4,SIM,PIE"
# E501: line length belongs to the formatter, and every project chooses its own.
IGNORE = "E501"
# Rules whose violations are probable bugs rather than style: medium; everything else low.
MEDIUM_PREFIXES = ("F", "B", "E9", "invalid-syntax")


def ruff_severity(rule: str) -> Severity:
    """Probable bugs (pyflakes, bugbear, syntax errors) are medium; style is low."""
    return "medium" if rule.startswith(MEDIUM_PREFIXES) else "low"


@dataclass(frozen=True)
class QualityAgent(LocalAgent):
    """ruff with a fixed rule set; ``ruff_cmd`` is how ruff is started."""

    name: ClassVar[str] = AGENT
    ceiling: ClassVar[Severity] = "medium"
    ruff_cmd: tuple[str, ...] = (sys.executable, "-m", "ruff")
    select: str = SELECT
    ignore: str = IGNORE

    def review(self, inp: AgentInput) -> AgentResult:
        return lint_changed(
            self, inp, (".py", ".pyi"),
            lambda paths, timeout: self._violations(paths, inp, timeout), _finding,
        )  # fmt: skip

    def _violations(self, paths: list[str], inp: AgentInput, timeout: float) -> ToolReport:
        args = [
            *self.ruff_cmd, "check", "--output-format", "json", "--no-cache", "--isolated",
            "--select", self.select, "--ignore", self.ignore, *paths,
        ]  # fmt: skip
        # ruff exits 1 when it found violations; that is a successful run for us.
        out = run_tool(args, inp.head_dir, timeout, agent=AGENT, ok_codes=(0, 1))
        try:
            items = json.loads(out)
        except ValueError as exc:
            raise AgentError(AGENT, f"ruff printed no JSON report: {out[:200]!r}") from exc
        if not isinstance(items, list):
            raise AgentError(AGENT, f"ruff printed {type(items).__name__}, expected a list")
        found = [i for i in items if isinstance(i, dict)]
        # A file that does not parse got only the checks that need no syntax tree.
        unread = {
            str(i.get("filename")): f"ruff: {i.get('message', 'syntax error')}"
            for i in found
            if _rule(i) == "invalid-syntax"
        }
        return ToolReport(found, unread)


def _rule(item: dict[str, object]) -> str:
    # ruff names syntax errors "invalid-syntax"; versions before 0.12 gave no code at all.
    return str(item.get("code") or "invalid-syntax")


def _row(value: object) -> int | None:
    return int(value["row"]) if isinstance(value, dict) and "row" in value else None


def _finding(item: dict[str, object], rel: str) -> Finding:
    rule = _rule(item)
    message = str(item.get("message", ""))
    url = item.get("url")
    return Finding(
        ruff_severity(rule), rel, _row(item.get("location")), rule, message, AGENT,
        end_line=_row(item.get("end_location")),
        help_uri=url if isinstance(url, str) and url.startswith("https://") else None,
    )  # fmt: skip
