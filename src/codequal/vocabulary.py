"""The words every part of CodeQual shares: log levels, severities and the timestamp format.

A leaf module: it imports nothing of codequal, so any layer may import it.
"""

from __future__ import annotations

import math
import re
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


# Prometheus's duration units (model/time.go), largest first in a compound such as "1h30m".
DURATION_UNITS = {"y": 365 * 86_400.0, "w": 7 * 86_400.0, "d": 86_400.0, "h": 3600.0,
                  "m": 60.0, "s": 1.0, "ms": 0.001}  # fmt: skip
_DURATION = re.compile(r"(\d+)(ms|[ywdhms])")
DURATION_HINT = "a duration such as 15s, 1m, 2h, 7d or 1h30m, or a number of seconds"


def parse_duration(value: str | float, unit: float = 1.0) -> float:
    """Seconds in ``value``: Prometheus's duration syntax (``15s``, ``1m``, ``2h``, ``7d``,
    ``1h30m``) or a plain number of ``unit`` seconds (``"90"`` is 90 s when ``unit`` is 1).

    ValueError (with :data:`DURATION_HINT`) for anything else, negative or not finite.
    """
    if isinstance(value, bool):
        raise ValueError(DURATION_HINT)
    if isinstance(value, int | float):
        seconds = float(value) * unit
    else:
        seconds = _duration_text(value.strip(), unit)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(DURATION_HINT)
    return seconds


def _duration_text(text: str, unit: float) -> float:
    try:
        return float(text) * unit
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(DURATION_HINT)
    units = [u for _, u in parts]
    order = list(DURATION_UNITS)
    if [order.index(u) for u in units] != sorted({order.index(u) for u in units}):
        raise ValueError(DURATION_HINT)  # each unit once, largest first, as Prometheus wants
    return sum(int(n) * DURATION_UNITS[u] for n, u in parts)
