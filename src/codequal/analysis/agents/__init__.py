"""Analysis agents: one module per agent behind :class:`~codequal.analysis.agents.base.Agent`.

A new agent is a new module plus one line in :data:`AGENTS` (and in the modes that run it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from codequal.analysis.agents.architecture import ArchitectureAgent
from codequal.analysis.agents.base import (
    SEVERITIES,
    Agent,
    AgentError,
    AgentInput,
    AgentTimeout,
    ChangedFile,
    Finding,
    Severity,
    parse_name_status,
    parse_severity,
    severity_at_least,
)
from codequal.analysis.agents.dependency import DependencyAgent
from codequal.analysis.agents.performance import PerformanceAgent
from codequal.analysis.agents.quality import QualityAgent
from codequal.analysis.agents.security import SecurityAgent

AGENTS: dict[str, Agent] = {
    "security": SecurityAgent(),
    "codeQuality": QualityAgent(),
    "performance": PerformanceAgent(),
    "dependency": DependencyAgent(),
    "architecture": ArchitectureAgent(),
}

_ALL = ("security", "codeQuality", "architecture", "performance", "dependency")
MODE_AGENTS: dict[str, tuple[str, ...]] = {
    "quick": ("security", "codeQuality"),
    "comprehensive": _ALL,
    "deep": _ALL,  # deep adds a reporting step in the orchestrator, not more agents
}

#: ``auto`` thresholds: above DEEP_LINES lines -> deep; above LARGE_LINES lines or
#: LARGE_FILES files -> comprehensive.
DEEP_LINES = 2000
LARGE_LINES = 400
LARGE_FILES = 20

# Path words (split on / . _ -) that mark security-sensitive code, and file names that do.
# fmt: off
SENSITIVE_WORDS = frozenset({
    "auth", "authn", "authz", "authentication", "authorization", "oauth", "login", "session",
    "crypto", "cryptography", "secret", "secrets", "password", "passwords", "credential",
    "credentials", "token", "tokens", "jwt", "permission", "permissions", "settings",
    "security", "ssl", "tls",
})
SENSITIVE_NAMES = frozenset({
    "dockerfile", "docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml",
    "jenkinsfile", ".gitlab-ci.yml", "pyproject.toml", "setup.py", "setup.cfg", "pipfile",
    "pipfile.lock", "poetry.lock", "uv.lock", "package.json", "package-lock.json",
    "yarn.lock", "pnpm-lock.yaml",
})
# fmt: on
SENSITIVE_SUFFIXES = (".pem", ".key")


def is_security_sensitive(path: str) -> bool:
    """Auth, crypto, secrets, settings, container and CI definitions, dependency manifests."""
    p = PurePosixPath(path.lower())
    if p.name in SENSITIVE_NAMES or p.name.startswith(("dockerfile", "requirements", ".env")):
        return True
    if p.suffix in SENSITIVE_SUFFIXES or p.as_posix().startswith(".github/workflows/"):
        return True
    return bool(SENSITIVE_WORDS.intersection(re.split(r"[/._-]", p.as_posix())))


def choose_mode(changed: Sequence[ChangedFile], lines_changed: int) -> tuple[str, str]:
    """The mode ``auto`` runs for a diff, and the rule that decided it (for the report)."""
    files = len(changed)
    if lines_changed > DEEP_LINES:
        return "deep", f"{lines_changed} lines changed (more than {DEEP_LINES})"
    sensitive = [c.path for c in changed if is_security_sensitive(c.path)]
    if sensitive:
        shown = ", ".join(sensitive[:5]) + (
            f" and {len(sensitive) - 5} more" if len(sensitive) > 5 else ""
        )
        return "comprehensive", f"security-sensitive files changed: {shown}"
    if lines_changed > LARGE_LINES:
        return "comprehensive", f"{lines_changed} lines changed (more than {LARGE_LINES})"
    if files > LARGE_FILES:
        return "comprehensive", f"{files} files changed (more than {LARGE_FILES})"
    return "quick", (
        f"{lines_changed} lines in {files} files (at most {LARGE_LINES} lines and "
        f"{LARGE_FILES} files), no security-sensitive files"
    )


__all__ = [
    "AGENTS",
    "MODE_AGENTS",
    "SEVERITIES",
    "Agent",
    "AgentError",
    "AgentInput",
    "AgentTimeout",
    "ArchitectureAgent",
    "ChangedFile",
    "DependencyAgent",
    "Finding",
    "PerformanceAgent",
    "QualityAgent",
    "SecurityAgent",
    "Severity",
    "choose_mode",
    "is_security_sensitive",
    "parse_name_status",
    "parse_severity",
    "severity_at_least",
]
