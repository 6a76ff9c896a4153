"""codeQuality agent: ruff on the changed Python files, reporting only new violations.

A violation is new when base has no violation of the same rule in the same file on a line
with the same (whitespace-normalised) content; line numbers are not compared because an edit
above shifts every line below it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from codequal.analysis.agents.base import (
    AgentError,
    AgentInput,
    Deadline,
    Finding,
    Keyed,
    Severity,
    introduced,
    line_at,
    run_on_trees,
    run_tool,
    sort_findings,
    tool_targets,
)

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
class QualityAgent:
    """ruff with a fixed rule set; ``ruff_cmd`` is how ruff is started."""

    ruff_cmd: tuple[str, ...] = (sys.executable, "-m", "ruff")
    select: str = SELECT
    ignore: str = IGNORE

    @property
    def name(self) -> str:
        return AGENT

    @property
    def provider(self) -> str:
        return "local"

    def run(self, inp: AgentInput) -> list[Finding]:
        deadline = Deadline.start(AGENT, inp.timeout)
        targets = tool_targets(inp, (".py", ".pyi"))
        head, base = run_on_trees(
            targets,
            lambda paths: self._violations(paths, inp, deadline),
            lambda item, target: _finding(item, target.head_path, target.text),
        )
        return sort_findings(introduced(head, base))

    def _violations(
        self, paths: list[str], inp: AgentInput, deadline: Deadline
    ) -> list[dict[str, object]]:
        args = [
            *self.ruff_cmd,
            "check",
            "--output-format",
            "json",
            "--no-cache",
            "--isolated",
            "--select",
            self.select,
            "--ignore",
            self.ignore,
            *paths,
        ]
        # ruff exits 1 when it found violations; that is a successful run for us.
        out = run_tool(args, inp.head_dir, deadline.remaining(), agent=AGENT, ok_codes=(0, 1))
        try:
            items = json.loads(out)
        except ValueError as exc:
            raise AgentError(AGENT, f"ruff printed no JSON report: {out[:200]!r}") from exc
        if not isinstance(items, list):
            raise AgentError(AGENT, f"ruff printed {type(items).__name__}, expected a list")
        return [i for i in items if isinstance(i, dict)]


def _finding(item: dict[str, object], rel: str, text: str | None) -> Keyed:
    # ruff names syntax errors "invalid-syntax"; versions before 0.12 gave no code at all.
    rule = str(item.get("code") or "invalid-syntax")
    location = item.get("location")
    line = int(location["row"]) if isinstance(location, dict) else None
    message = str(item.get("message", ""))
    finding = Finding(ruff_severity(rule), rel, line, rule, message, AGENT)
    return finding, (rule, rel, line_at(text, line))
