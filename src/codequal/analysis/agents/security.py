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
    Keyed,
    Severity,
    introduced,
    line_at,
    read_text,
    run_on_trees,
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
        head: list[Keyed] = []
        base: list[Hashable] = []
        for changed in files:
            deadline.remaining()
            head.extend(_secrets_in(inp.head_dir, changed.path, changed.path))
            base.extend(k for _, k in _secrets_in(inp.base_dir, changed.base_path, changed.path))
        bandit_head, bandit_base = run_on_trees(
            tool_targets(inp, (".py",)),
            lambda paths: self._bandit_results(paths, inp, deadline),
            lambda result, target: _bandit_finding(result, target.head_path, target.text),
        )
        head.extend(bandit_head)
        base.extend(bandit_base)
        return sort_findings(introduced(head, base))

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


def _secrets_in(root: Path | None, rel: str | None, head_rel: str) -> list[Keyed]:
    text = read_text(root, rel)
    return [] if text is None else list(scan_secrets(head_rel, text))


def _bandit_finding(result: dict[str, object], rel: str, text: str | None) -> Keyed:
    line = int(str(result["line_number"]))
    rule = str(result["test_id"])
    severity = bandit_severity(str(result["issue_severity"]), str(result["issue_confidence"]))
    message = f"{result['issue_text']} ({result['test_name']})"
    finding = Finding(severity, rel, line, rule, message, AGENT)
    return finding, (rule, rel, line_at(text, line))
