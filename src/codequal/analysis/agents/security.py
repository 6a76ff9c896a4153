"""security agent: bandit on changed Python files, a secret scanner on every changed text file.

Findings on lines the PR added or modified are its own; the rest are existing (see
:mod:`.baseline`), so moving old code around is not a new problem.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from codequal.analysis.agents.base import (
    AgentError,
    AgentInput,
    AgentResult,
    ChangedFile,
    Finding,
    Keyed,
    LocalAgent,
    Severity,
    Skip,
    normalise,
    read_text,
    run_tool,
    sort_findings,
)
from codequal.analysis.agents.baseline import classify, needs_base
from codequal.analysis.agents.tools import ToolReport, lint_changed, read_each

AGENT = "security"

# B101: asserts are how tests check things. B105-B107: our scanner covers hard-coded
# passwords with entropy and placeholders, and bandit would print the secret in its message.
BANDIT_SKIP = ("B101", "B105", "B106", "B107")
BANDIT_SEVERITY: dict[str, Severity] = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
_DOWNGRADE: dict[Severity, Severity] = {"high": "medium", "medium": "low", "low": "info"}

#: Shannon entropy (bits per character) from which an assigned value looks random.
ENTROPY_THRESHOLD = 3.0
MIN_SECRET_LENGTH = 8

AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{16}(?![A-Z0-9])")
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# Scanned files include minified and generated lines tens of kilobytes long: the quoted
# pattern starts with a literal keyword (cheap to reject at each position), the bare one is
# anchored, and every repetition is bounded, so no line makes them backtrack quadratically.
_KEYWORD = (
    r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth[_-]?key"
    r"|private[_-]?key|credentials?)"
)
# keyword and the rest of its name, optional closing quote (JSON/YAML keys), optional type
# annotation, then an assignment operator (never a comparison) and a quoted literal.
QUOTED_SECRET = re.compile(
    r"(?P<name>" + _KEYWORD + r"""[\w.-]{0,40})["']?"""
    r"""(?:[ \t]{0,20}:[ \t]{0,20}[\w.\[\]|, ]{1,60}?)?[ \t]{0,20}(?::=|=>|=(?!=)|:)"""
    r"""[ \t]{0,20}[bru]?(?P<q>["'`])(?P<value>[^"'`\s]{1,200})(?P=q)""",
    re.IGNORECASE,
)
# .env, INI and YAML files assign without quotes; there "#" starts a comment only after
# whitespace, so it may appear inside a value.
BARE_SECRET = re.compile(
    r"[ \t]{0,40}(?:export[ \t]+)?(?P<name>[\w.-]{0,40}" + _KEYWORD + r"[\w.-]{0,40})"
    r"""[ \t]{0,20}[=:][ \t]{0,20}(?P<value>[^\s"']{1,200})(?:[ \t]+#.*)?[ \t]*$""",
    re.IGNORECASE,
)
# The part of a name before its keyword (``db_`` in ``db_password``).
_NAME_PREFIX = re.compile(r"[\w.-]{0,40}$")
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
    matches = list(QUOTED_SECRET.finditer(line))
    if config and (bare := BARE_SECRET.match(line)):
        matches.append(bare)
    for m in matches:
        if looks_secret(value := m.group("value")):
            start = m.start("name")
            prefix = _NAME_PREFIX.search(line, max(0, start - 40), start)
            name = (prefix.group() if prefix else "") + m.group("name")
            return "hardcoded-secret", f"`{name}` holds a hard-coded secret {mask(value)}; {ADVICE}"
    return None


def scan_secrets(path: str, text: str) -> Iterator[Keyed]:
    """Secrets in one file's text, each with its line-number-free key."""
    config = Path(path).name.startswith(".env") or path.endswith(CONFIG_SUFFIXES)
    for number, line in enumerate(text.splitlines(), start=1):
        hit = _secret_on_line(line, config)
        if hit is not None:
            rule, message = hit
            yield (
                Finding("critical", path, number, rule, message, AGENT),
                (rule, path, normalise(line)),
            )


def bandit_severity(severity: str, confidence: str) -> Severity:
    """Bandit's severity, one step lower when bandit itself is not confident."""
    ours = BANDIT_SEVERITY.get(severity.upper(), "low")
    return _DOWNGRADE[ours] if confidence.upper() == "LOW" else ours


@dataclass(frozen=True)
class SecurityAgent(LocalAgent):
    """bandit plus secret scanning; ``bandit_cmd`` is how bandit is started."""

    name: ClassVar[str] = AGENT
    ceiling: ClassVar[Severity] = "critical"
    bandit_cmd: tuple[str, ...] = (sys.executable, "-m", "bandit")

    def review(self, inp: AgentInput) -> AgentResult:
        secrets = self._secrets(inp)
        bandit = lint_changed(
            self, inp, (".py",), lambda paths, timeout: self._bandit(paths, inp, timeout),
            _bandit_finding, could_hide="high",
        )  # fmt: skip
        return AgentResult(
            tuple(sort_findings(secrets.findings + bandit.findings)),
            tuple(sorted(set(secrets.analysed) | set(bandit.analysed))),
            secrets.skipped + bandit.skipped,
        )

    def _secrets(self, inp: AgentInput) -> AgentResult:
        findings: list[Finding] = []
        analysed: list[str] = []
        skipped: list[Skip] = []
        for changed, text in read_each(self, inp, inp.present(), skipped):
            findings += _classified_secrets(inp, changed, text)
            analysed.append(changed.path)
        return AgentResult(tuple(findings), tuple(analysed), tuple(skipped))

    def _bandit(self, paths: list[str], inp: AgentInput, timeout: float) -> ToolReport:
        args = [*self.bandit_cmd, "-f", "json", "-q", "--skip", ",".join(BANDIT_SKIP), *paths]
        # bandit exits 1 when it found issues; that is a successful run for us.
        out = run_tool(args, inp.head_dir, timeout, agent=AGENT, ok_codes=(0, 1))
        try:
            data = json.loads(out)
            results, errors = data["results"], data.get("errors") or []
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AgentError(AGENT, f"bandit printed no JSON report: {out[:200]!r}") from exc
        unread = {
            str(e.get("filename")): f"bandit: {e.get('reason')}"
            for e in errors
            if isinstance(e, dict)
        }
        return ToolReport([r for r in results if isinstance(r, dict)], unread)


def _classified_secrets(inp: AgentInput, changed: ChangedFile, text: str) -> list[Finding]:
    head = [f for f, _ in scan_secrets(changed.path, text)]
    diff = inp.diff_of(changed, text)
    base_text = read_text(inp.base_dir, changed.base_path) if needs_base(head, diff) else None
    base = [f for f, _ in scan_secrets(changed.path, base_text)] if base_text else []
    old_lines = base_text.splitlines() if base_text is not None else []
    return classify(head, base, diff, text.splitlines(), old_lines)


def _bandit_finding(result: dict[str, object], rel: str) -> Finding:
    line = int(str(result["line_number"]))
    span = result.get("line_range")
    end = max(int(n) for n in span) if isinstance(span, list) and span else line
    rule = str(result["test_id"])
    severity = bandit_severity(str(result["issue_severity"]), str(result["issue_confidence"]))
    message = f"{result['issue_text']} ({result['test_name']})"
    info = result.get("more_info")
    return Finding(
        severity, rel, line, rule, message, AGENT, end_line=end,
        help_uri=str(info) if isinstance(info, str) and info.startswith("https://") else None,
    )  # fmt: skip
