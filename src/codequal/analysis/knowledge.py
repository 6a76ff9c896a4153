"""The repository knowledge store (the plan's "vector DB"): one profile per repository.

Freshness decides what the orchestrator does: fresh (<= 1 day) → reuse; stale (<= 7 days) →
reuse and refresh in the background; older or missing → run DeepWiki first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from codequal.storage.db import Database
from codequal.storage.schema import knowledge_entries
from codequal.telemetry.metrics import VECTORDB_LATENCY

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


class KnowledgeStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._get_latency = VECTORDB_LATENCY.labels(operation="get")
        self._put_latency = VECTORDB_LATENCY.labels(operation="upsert")

    def get(self, repository_url: str) -> Knowledge | None:
        start = time.perf_counter()
        try:
            with self._db.engine.connect() as conn:
                row = conn.execute(
                    sa.select(knowledge_entries).where(
                        knowledge_entries.c.repository_url == repository_url
                    )
                ).first()
        finally:
            self._get_latency.observe(time.perf_counter() - start)
        if row is None:
            return None
        return Knowledge(row.repository_url, row.profile, row.analysed_at)

    def put(self, repository_url: str, profile: dict[str, Any], now: float) -> None:
        start = time.perf_counter()
        try:
            with self._db.engine.begin() as conn:
                updated = conn.execute(
                    knowledge_entries.update()
                    .where(knowledge_entries.c.repository_url == repository_url)
                    .values(profile=profile, analysed_at=now)
                ).rowcount
                if not updated:
                    conn.execute(
                        knowledge_entries.insert(),
                        {"repository_url": repository_url, "profile": profile, "analysed_at": now},
                    )
        finally:
            self._put_latency.observe(time.perf_counter() - start)
