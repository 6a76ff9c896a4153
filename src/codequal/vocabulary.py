"""The words every part of CodeQual shares: log levels, severities and the timestamp format.

A leaf module: it imports nothing of codequal, so any layer may import it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args

# LogEntry levels, least severe first (the plan's LogEntry schema).
Level = Literal["debug", "info", "warn", "error", "critical"]
LEVELS: tuple[Level, ...] = get_args(Level)

# Severities of alerts, most urgent first (routing, runbooks and channels map from these).
AlertSeverity = Literal["emergency", "critical", "warning", "ticket", "info"]
ALERT_SEVERITIES: tuple[AlertSeverity, ...] = get_args(AlertSeverity)

# Severities of review findings, most severe first (`codequal analyze --fail-on`).
FindingSeverity = Literal["critical", "high", "medium", "low", "info"]
FINDING_SEVERITIES: tuple[FindingSeverity, ...] = get_args(FindingSeverity)


def level_rank(level: str) -> int:
    """The position of ``level`` in LEVELS (debug 0 .. critical 4); ValueError if unknown."""
    return LEVELS.index(level)


def iso_timestamp(ts: float) -> str:
    """UTC ISO 8601 with milliseconds and a ``Z``, as in the plan's LogEntry."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
