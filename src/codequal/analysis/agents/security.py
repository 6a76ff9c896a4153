"""security agent: bandit on changed Python files, a secret scanner on every changed text file.

Only what the PR introduced is reported: a finding whose rule, file and line content already
existed in the base tree is dropped, so moving old code around is not a new problem.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

from codequal.analysis.agents.base import (
    AgentError,
    AgentInput,
    Deadline,
    Finding,
    Severity,
    introduced,
    line_at,
    read_text,
    resolved,
    run_tool,
    sort_findings,
    tool_targets,
)

AGENT = "security"

# B101: asserts are how tests check things. B105-B107: our scanner covers hard-coded
# passwords with entropy and placeholders, and bandit would print the secret in its message.
BANDIT_SKIP = ("B101", "B105", "B106", "B107")
BANDIT_SEVERITY: dict[str, Severity] = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
_DOWNGRADE: dict[Severity, Severity] = {"high": "medium", "medium": "low", "low": "info"}
# Keeps each bandit command line far below the OS argument limit.
BATCH = 200

#: Shannon entropy (bits per character) from which an assigned value looks random.
ENTROPY_THRESHOLD = 3.0
MIN_SECRET_LENGTH = 8

AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{16}(?![A-Z0-9])")
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_NAME = (
    r"(?P<name>[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key"
    r"|auth[_-]?key|private[_-]?key|credentials?)[\w.-]*)"
)
# name, optional closing quote (JSON/YAML keys), optional type annotation, then an assignment
# operator (never a comparison) and a quoted literal.
QUOTED_SECRET = re.compile(
    _NAME + r"""["']?(?:\s*:\s*[\w.\[\]|, ]+?)?\s*(?::=|=>|=(?!=)|:)\s*"""
    r"""[bru]?(?P<q>["'`])(?P<value>[^"'`\s]+)(?P=q)""",
    re.IGNORECASE,
)
# .env, INI and YAML files assign without quotes; there "#" starts a comment only after
# whitespace, so it may appear inside a value.
BARE_SECRET = re.compile(
    r"^\s*(?:export\s+)?" + _NAME + r"\s*[=:]\s*(?P<value>[^\s\"']+)(?:\s+#.*)?\s*$",
    re.IGNORECASE,
)
CONFIG_SUFFIXES = (".env", ".ini", ".cfg", ".conf", ".properties", ".yaml", ".yml", ".toml")
ADVICE = "remove it, rotate it and read it from the environment or a secret store"
PLACEHOLDERS = (
    "changeme", "change_me", "change-me", "xxx", "example", "placeholder", "dummy",
    "redacted", "your", "***", "...", "<", ">", "${", "{{", "%(", "://",
)  # fmt: skip


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s character distribution."""
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def looks_secret(value: str) -> bool:
    """A literal that is long, random-looking, not a placeholder and not an env lookup."""
    lowered = value.lower()
    if len(value) < MIN_SECRET_LENGTH or value[0] in "$!%{":
        return False
    if any(p in lowered for p in PLACEHOLDERS):
        return False
    # Identifiers and words (lower_snake, kebab) are labels, not secrets: demand a digit
    # or symbol, as generated tokens and passwords have.
    if not any(c.isdigit() or not (c.isalnum() or c in "_-.") for c in value):
        return False
    return shannon_entropy(value) >= ENTROPY_THRESHOLD


def mask(value: str, keep: int = 2) -> str:
    """Enough of a secret to find it again, never enough to use it (nor its length)."""
    return value[:keep] + "…"


def _secret_on_line(line: str, config: bool) -> tuple[str, str] | None:
    """(rule, message) for the first secret on a line, or None."""
    # AWS documents AKIAIOSFODNN7EXAMPLE; its own placeholder is not a leak. The four
    # characters shown name the key type (AKIA: long-term user key), not the key.
    if (m := AWS_KEY_ID.search(line)) and "EXAMPLE" not in m.group(0):
        return "aws-access-key-id", f"hard-coded AWS access key id {mask(m.group(0), 4)}; {ADVICE}"
    if PRIVATE_KEY.search(line):
        return "private-key", f"private key block committed to the repository; {ADVICE}"
    patterns = (QUOTED_SECRET, BARE_SECRET) if config else (QUOTED_SECRET,)
    for pattern in patterns:
        for m in pattern.finditer(line):
            if looks_secret(value := m.group("value")):
                name = m.group("name")
                return (
                    "hardcoded-secret",
                    f"`{name}` holds a hard-coded secret {mask(value)}; {ADVICE}",
                )
    return None


def scan_secrets(path: str, text: str) -> Iterator[tuple[Finding, Hashable]]:
    """Secrets in one file's text, each with its line-number-free key."""
    config = Path(path).name.startswith(".env") or path.endswith(CONFIG_SUFFIXES)
    for number, line in enumerate(text.splitlines(), start=1):
        hit = _secret_on_line(line, config)
        if hit is None:
            continue
        rule, message = hit
        finding = Finding("critical", path, number, rule, message, AGENT)
        yield finding, (rule, path, line_at(text, number))


def bandit_severity(severity: str, confidence: str) -> Severity:
    """Bandit's severity, one step lower when bandit itself is not confident."""
    ours = BANDIT_SEVERITY.get(severity.upper(), "low")
    return _DOWNGRADE[ours] if confidence.upper() == "LOW" else ours


@dataclass(frozen=True)
class SecurityAgent:
    """bandit plus secret scanning; ``bandit_cmd`` is how bandit is started."""

    bandit_cmd: tuple[str, ...] = (sys.executable, "-m", "bandit")

    @property
    def name(self) -> str:
        return AGENT

    @property
    def provider(self) -> str:
        return "local"

    def run(self, inp: AgentInput) -> list[Finding]:
        deadline = Deadline.start(AGENT, inp.timeout)
        files = inp.present()
        head: list[tuple[Finding, Hashable]] = []
        base: list[Hashable] = []
        for changed in files:
            deadline.remaining()
            head.extend(_secrets_in(inp.head_dir, changed.path, changed.path))
            base.extend(k for _, k in _secrets_in(inp.base_dir, changed.base_path, changed.path))
        bandit_head, bandit_base = self._bandit(inp, deadline)
        head.extend(bandit_head)
        base.extend(bandit_base)
        return sort_findings(introduced(head, base))

    def _bandit(
        self, inp: AgentInput, deadline: Deadline
    ) -> tuple[list[tuple[Finding, Hashable]], list[Hashable]]:
        """Run bandit over head and base copies of the changed Python files."""
        targets = tool_targets(inp, (".py",))
        head: list[tuple[Finding, Hashable]] = []
        base: list[Hashable] = []
        paths = list(targets)
        for start in range(0, len(paths), BATCH):
            for result in self._bandit_results(paths[start : start + BATCH], inp, deadline):
                target = targets.get(resolved(str(result.get("filename", ""))))
                if target is None:  # not a file we passed: nothing to attribute it to
                    continue
                finding, key = _bandit_finding(result, target.head_path, target.text)
                if target.is_head:
                    head.append((finding, key))
                else:
                    base.append(key)
        return head, base

    def _bandit_results(
        self, paths: list[str], inp: AgentInput, deadline: Deadline
    ) -> list[dict[str, object]]:
        args = [*self.bandit_cmd, "-f", "json", "-q", "--skip", ",".join(BANDIT_SKIP), *paths]
        # bandit exits 1 when it found issues; that is a successful run for us.
        out = run_tool(args, inp.head_dir, deadline.remaining(), agent=AGENT, ok_codes=(0, 1))
        try:
            results = json.loads(out)["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AgentError(AGENT, f"bandit printed no JSON report: {out[:200]!r}") from exc
        return [r for r in results if isinstance(r, dict)]


def _secrets_in(
    root: Path | None, rel: str | None, head_rel: str
) -> list[tuple[Finding, Hashable]]:
    text = read_text(root, rel)
    return [] if text is None else list(scan_secrets(head_rel, text))


def _bandit_finding(
    result: dict[str, object], rel: str, text: str | None
) -> tuple[Finding, Hashable]:
    line = int(str(result["line_number"]))
    rule = str(result["test_id"])
    severity = bandit_severity(str(result["issue_severity"]), str(result["issue_confidence"]))
    message = f"{result['issue_text']} ({result['test_name']})"
    finding = Finding(severity, rel, line, rule, message, AGENT)
    return finding, (rule, rel, line_at(text, line))
