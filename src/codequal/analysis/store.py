"""Where the analysis part keeps its records: analyses and their findings, repository profiles
(the knowledge store) and the DeepWiki workspace's cleanup history.

Analyses are durable jobs: submit, claim (one worker per job), heartbeat, finish, recover. On
PostgreSQL, claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` so several server processes
share the queue without taking the same job twice; on SQLite (one process) a conditional
``UPDATE ... WHERE status = 'queued'`` is enough.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from codequal.analysis.knowledge import Knowledge
from codequal.analysis.stats_store import forget_stats, write_stats
from codequal.storage.db import Database
from codequal.storage.schema import analyses, deepwiki_cleanups, findings, knowledge_entries
from codequal.telemetry.metrics import VECTORDB_LATENCY

#: ``partial``: a report, but an agent failed or a file was not read (the coverage says which);
#: ``rejected``: the caller's mistake (a bad ref, a repository unreachable or refused).
STATUSES = ("queued", "running", "completed", "partial", "failed", "rejected")
FINISHED = ("completed", "partial", "failed", "rejected")
MODES = ("quick", "comprehensive", "deep", "auto")


@dataclass(frozen=True)
class AnalysisRequest:
    repository_url: str
    base: str
    head: str
    mode: str = "auto"
    pr_number: int | None = None
    user_id: str | None = None
    credentials: str | None = field(default=None, repr=False)  # sealed (credentials.py)


@dataclass(frozen=True)
class AnalysisRecord:
    id: str
    repository_url: str
    base: str
    head: str
    pr_number: int | None
    requested_mode: str
    mode: str | None
    mode_reason: str | None
    status: str
    step: str | None
    user_id: str | None
    trace_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    error_type: str | None
    error_message: str | None
    timings: dict[str, float] | None
    cost: dict[str, Any] | None
    cost_total: float | None
    summary: dict[str, Any] | None
    findings: list[dict[str, Any]] = field(default_factory=list)
    # The sealed credentials of the repository URL, until the analysis ends (never reported).
    credentials: str | None = field(default=None, repr=False)

    @property
    def request(self) -> AnalysisRequest:
        return AnalysisRequest(
            self.repository_url,
            self.base,
            self.head,
            self.requested_mode,
            self.pr_number,
            self.user_id,
        )

    def to_report(self, all_findings: bool = False) -> dict[str, Any]:
        """The JSON report: API body and ``codequal analyze --format json``.

        ``findings`` are the ones the PR introduced; with ``all_findings`` the ones on code it
        did not touch follow under ``existingFindings`` (the summary counts both).
        """
        report = {
            "id": self.id,
            "repositoryUrl": self.repository_url,
            "base": self.base,
            "head": self.head,
            "prNumber": self.pr_number,
            "requestedMode": self.requested_mode,
            "mode": self.mode,
            "modeReason": self.mode_reason,
            "status": self.status,
            "reason": self.error_type if self.status == "rejected" else None,
            "step": self.step,
            "traceId": self.trace_id,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "attempts": self.attempts,
            "error": (
                {"type": self.error_type, "message": self.error_message}
                if self.error_type
                else None
            ),
            "timings": self.timings or {},
            "cost": self.cost or {"total": 0.0},
            "summary": self.summary,
            "coverage": (self.summary or {}).get("coverage"),
            "findings": [_item(f) for f in self.findings if f.get("new", True)],
        }
        if all_findings:
            report["existingFindings"] = [_item(f) for f in self.findings if not f.get("new", True)]
        return report


def _item(finding: dict[str, Any]) -> dict[str, Any]:
    return {k: finding[k] for k in _FINDING_KEYS}


@dataclass(frozen=True)
class Outcome:
    """What the orchestrator hands back for one analysis."""

    status: str  # completed | partial | failed | rejected
    mode: str | None
    mode_reason: str | None
    timings: dict[str, float]
    cost: dict[str, Any]
    findings: Sequence[dict[str, Any]] = ()
    summary: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    trace_id: str | None = None


_FINDING_KEYS = ("severity", "file", "line", "rule", "message", "agent")
# Stored beside the report keys: record key -> column.
_FINDING_EXTRA = {"endLine": "end_line", "new": "is_new", "fingerprint": "fingerprint",
                  "helpUri": "help_uri"}  # fmt: skip


class AnalysisStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, request: AnalysisRequest, now: float, trace_id: str | None = None) -> str:
        analysis_id = uuid.uuid4().hex
        row = {
            "id": analysis_id,
            "repository_url": request.repository_url,
            "repository_secret": request.credentials,
            "base": request.base,
            "head": request.head,
            "pr_number": request.pr_number,
            "requested_mode": request.mode,
            "status": "queued",
            "user_id": request.user_id,
            "trace_id": trace_id,
            "created_at": now,
            "attempts": 0,
        }
        with self._db.engine.begin() as conn:
            conn.execute(analyses.insert(), row)
        return analysis_id

    def claim(
        self, worker_id: str, now: float, analysis_id: str | None = None
    ) -> AnalysisRecord | None:
        """Take the oldest queued analysis (or the one named); None when there is none."""
        t = analyses
        pick = sa.select(t.c.id).where(t.c.status == "queued").order_by(t.c.created_at).limit(1)
        if analysis_id is not None:
            pick = pick.where(t.c.id == analysis_id)
        with self._db.engine.begin() as conn:
            if self._db.dialect == "postgresql":
                picked = conn.execute(pick.with_for_update(skip_locked=True)).scalar()
                if picked is None:
                    return None
                where = t.c.id == picked
            else:
                where = (t.c.id == pick.scalar_subquery()) & (t.c.status == "queued")
            claimed = conn.execute(
                t.update()
                .where(where)
                .values(
                    status="running",
                    worker_id=worker_id,
                    started_at=now,
                    heartbeat_at=now,
                    attempts=t.c.attempts + 1,
                    step="queued",
                )
                .returning(t.c.id)
            ).scalar()
        return self.get(claimed) if claimed is not None else None

    def heartbeat(self, analysis_id: str, now: float, step: str | None = None) -> None:
        values: dict[str, Any] = {"heartbeat_at": now}
        if step is not None:
            values["step"] = step
        with self._db.engine.begin() as conn:
            conn.execute(
                analyses.update()
                .where((analyses.c.id == analysis_id) & (analyses.c.status == "running"))
                .values(**values)
            )

    def finish(self, analysis_id: str, outcome: Outcome, now: float) -> None:
        """Store the outcome, findings and analytics numbers in one transaction."""
        with self._db.engine.begin() as conn:
            forget_stats(conn, analysis_id)  # a job finished twice keeps only its last outcome
            conn.execute(
                analyses.update()
                .where(analyses.c.id == analysis_id)
                .values(
                    status=outcome.status,
                    mode=outcome.mode,
                    mode_reason=outcome.mode_reason,
                    step=None,
                    finished_at=now,
                    timings=outcome.timings,
                    cost=outcome.cost,
                    cost_total=outcome.cost.get("total"),
                    summary=outcome.summary,
                    error_type=outcome.error_type,
                    error_message=outcome.error_message,
                    repository_secret=None,  # the credentials were needed to clone: no more
                    **({"trace_id": outcome.trace_id} if outcome.trace_id else {}),
                )
            )
            write_stats(conn, analysis_id)
            conn.execute(findings.delete().where(findings.c.analysis_id == analysis_id))
            if outcome.findings:
                conn.execute(findings.insert(), [_row(analysis_id, f) for f in outcome.findings])

    def requeue_stale(self, now: float, stale_after: float) -> int:
        """Put back running jobs whose worker stopped heartbeating (it died); return how many."""
        t = analyses
        with self._db.engine.begin() as conn:
            result = conn.execute(
                t.update()
                .where((t.c.status == "running") & (t.c.heartbeat_at < now - stale_after))
                .values(status="queued", worker_id=None, step=None)
            )
        return int(result.rowcount)

    def count_by_status(self) -> dict[str, int]:
        """How many analyses are in each status now."""
        stmt = sa.select(analyses.c.status, sa.func.count()).group_by(analyses.c.status)
        with self._db.engine.connect() as conn:
            return {str(status): int(n) for status, n in conn.execute(stmt)}

    def get(self, analysis_id: str) -> AnalysisRecord | None:
        with self._db.engine.connect() as conn:
            row = conn.execute(sa.select(analyses).where(analyses.c.id == analysis_id)).first()
            if row is None:
                return None
            columns = [findings.c[k] for k in (*_FINDING_KEYS, *_FINDING_EXTRA.values())]
            rows = conn.execute(
                sa.select(*columns)
                .where(findings.c.analysis_id == analysis_id)
                .order_by(findings.c.id)
            )
            found = [_finding(r._mapping) for r in rows]
        return _record(row._mapping, found)

    def list(
        self,
        *,
        status: str | None = None,
        repository_url: str | None = None,
        mode: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[AnalysisRecord], int]:
        """Newest first, without findings; also the total count matching the filters."""
        t = analyses
        conditions = []
        if status is not None:
            conditions.append(t.c.status == status)
        if repository_url is not None:
            conditions.append(t.c.repository_url == repository_url)
        if mode is not None:
            conditions.append(t.c.mode == mode)
        where = sa.and_(sa.true(), *conditions)
        stmt = sa.select(t).where(where).order_by(t.c.created_at.desc()).limit(limit).offset(offset)
        with self._db.engine.connect() as conn:
            rows = [_record(r._mapping, []) for r in conn.execute(stmt)]
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(where)
            ).scalar_one()
        return rows, int(total)


def _row(analysis_id: str, finding: dict[str, Any]) -> dict[str, Any]:
    row = {"analysis_id": analysis_id, **{k: finding[k] for k in _FINDING_KEYS}}
    for key, column in _FINDING_EXTRA.items():
        row[column] = finding.get(key, True if key == "new" else None)
    return row


def _finding(row: Any) -> dict[str, Any]:
    found = {k: row[k] for k in _FINDING_KEYS}
    found.update({key: row[column] for key, column in _FINDING_EXTRA.items()})
    found["new"] = bool(found["new"])
    return found


def _record(row: Any, found: list[dict[str, Any]]) -> AnalysisRecord:
    names = AnalysisRecord.__dataclass_fields__
    values = {k: row[k] for k in names if k not in ("findings", "credentials")}
    return AnalysisRecord(**values, findings=found, credentials=row["repository_secret"])


class KnowledgeStore:
    """Repository profiles (the plan's "vector DB"), one per repository, timed per operation."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._get_latency = VECTORDB_LATENCY.labels(operation="get")
        self._put_latency = VECTORDB_LATENCY.labels(operation="upsert")

    def get(self, repository_url: str) -> Knowledge | None:
        start = time.perf_counter()
        table = knowledge_entries
        try:
            with self._db.engine.connect() as conn:
                row = conn.execute(
                    sa.select(table).where(table.c.repository_url == repository_url)
                ).first()
        finally:
            self._get_latency.observe(time.perf_counter() - start)
        if row is None:
            return None
        return Knowledge(row.repository_url, row.profile, row.analysed_at)

    def put(self, repository_url: str, profile: dict[str, Any], now: float) -> None:
        start = time.perf_counter()
        table = knowledge_entries
        try:
            with self._db.engine.begin() as conn:
                updated = conn.execute(
                    table.update()
                    .where(table.c.repository_url == repository_url)
                    .values(profile=profile, analysed_at=now)
                ).rowcount
                if not updated:
                    conn.execute(
                        table.insert(),
                        {"repository_url": repository_url, "profile": profile, "analysed_at": now},
                    )
        finally:
            self._put_latency.observe(time.perf_counter() - start)

    def count(self) -> int:
        """How many repository profiles are kept (the health check reads the table this way)."""
        with self._db.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(knowledge_entries)
            return int(conn.execute(query).scalar_one())


class CleanupLog:
    """The DeepWiki workspace's cleanup history: what was removed, why, and how it went."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, row: dict[str, Any]) -> None:
        with self._db.engine.begin() as conn:
            conn.execute(deepwiki_cleanups.insert(), row)

    def counts(self) -> tuple[dict[str, int], float | None]:
        """Cleanups by result, and the time of the last one."""
        t = deepwiki_cleanups
        with self._db.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.result, sa.func.count()).group_by(t.c.result))
            counts = {str(r[0]): int(r[1]) for r in rows}
            last = conn.execute(sa.select(sa.func.max(t.c.ts))).scalar()
        return counts, last
