"""Repository knowledge (the plan's "vector DB"): one profile per repository, kept by
:class:`codequal.analysis.store.KnowledgeStore`.

Freshness decides what the orchestrator does: fresh (<= 1 day) → reuse; stale (<= 7 days) →
reuse and refresh in the background; older or missing → run DeepWiki first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FRESH_SECONDS = 86_400.0
STALE_SECONDS = 7 * 86_400.0
Freshness = Literal["fresh", "stale", "expired", "missing"]


def freshness(analysed_at: float | None, now: float) -> Freshness:
    if analysed_at is None:
        return "missing"
    age = now - analysed_at
    if age <= FRESH_SECONDS:
        return "fresh"
    if age <= STALE_SECONDS:
        return "stale"
    return "expired"


@dataclass(frozen=True)
class Knowledge:
    repository_url: str
    profile: dict[str, Any]
    analysed_at: float
