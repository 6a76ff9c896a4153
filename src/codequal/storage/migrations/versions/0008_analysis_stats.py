"""Analytics read model: each finished analysis's cost and timing numbers in real columns.

Cost analytics and insights decoded every analysis's JSON in Python (seconds for a busy
month); these tables let them aggregate in SQL. Existing analyses are backfilled.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analysis_stats",
        sa.Column("finished_at", sa.Float(), nullable=False),
        sa.Column("analysis_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("repository_url", sa.String(length=1000), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.Column("queue_seconds", sa.Float(), nullable=True),
        sa.Column("cost_total", sa.Float(), nullable=True),
        sa.Column("cost_infrastructure", sa.Float(), nullable=True),
        sa.Column("cost_deepwiki", sa.Float(), nullable=True),
        sa.Column("cost_llm", sa.Float(), nullable=True),
        sa.Column("llm_provider", sa.String(length=100), nullable=True),
        sa.Column("llm_model", sa.String(length=200), nullable=True),
        sa.Column("llm_input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("llm_output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("auto_mode", sa.String(length=16), nullable=True),
        sa.Column("size_class", sa.String(length=50), nullable=False),
        sa.Column("seconds_total", sa.Float(), nullable=True),
        sa.Column("seconds_clone", sa.Float(), nullable=True),
        sa.Column("seconds_knowledge", sa.Float(), nullable=True),
        sa.Column("seconds_deepwiki", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("finished_at", "analysis_id"),
        sqlite_with_rowid=False,
    )
    for name, columns in {
        "ix_analysis_stats_cost": ["cost_total", "finished_at"],
        "ix_analysis_stats_cost_groups": [
            "mode",
            "status",
            "llm_provider",
            "llm_model",
            "finished_at",
            "cost_total",
            "cost_infrastructure",
            "cost_deepwiki",
            "cost_llm",
            "llm_input_tokens",
            "llm_output_tokens",
        ],
        "ix_analysis_stats_mode_cost": ["mode", "status", "cost_total", "finished_at"],
        "ix_analysis_stats_movable": ["mode", "auto_mode", "cost_total", "finished_at"],
        "ix_analysis_stats_repository": [
            "repository_url",
            "finished_at",
            "cost_total",
            "seconds_deepwiki",
        ],
        "ix_analysis_stats_knowledge": ["seconds_knowledge", "finished_at"],
        "ix_analysis_stats_clone": ["size_class", "seconds_clone", "finished_at"],
        "ix_analysis_stats_queue": ["queue_seconds", "finished_at"],
    }.items():
        op.create_index(name, "analysis_stats", columns)
    op.create_table(
        "analysis_agent_times",
        sa.Column("finished_at", sa.Float(), nullable=False),
        sa.Column("analysis_id", sa.String(length=32), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("analysis_seconds", sa.Float(), nullable=True),
        sa.Column("cost_infrastructure", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("finished_at", "analysis_id", "agent"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_analysis_agent_times_agent",
        "analysis_agent_times",
        ["agent", "seconds", "finished_at", "analysis_seconds", "cost_infrastructure"],
    )
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("analysis_agent_times")
    op.drop_table("analysis_stats")


# -- the backfill, frozen as of this revision ---------------------------------------------------
# The same extraction as codequal.analysis.stats_store at the time (so backfilled rows equal the
# ones a finished analysis writes), copied here on purpose: a migration must not change when
# the application's code does, nor import a layer above storage.
_analyses = sa.table(
    "analyses",
    *(sa.column(name) for name in ("id", "finished_at", "status", "mode", "requested_mode",
                                   "repository_url", "trace_id", "created_at", "started_at")),
    sa.column("cost", sa.JSON()),
    sa.column("timings", sa.JSON()),
    sa.column("summary", sa.JSON()),
)  # fmt: skip
_COMPONENTS = ("infrastructure", "deepwiki", "llm")
_TIMED_STEPS = {
    "seconds_total": "total",
    "seconds_clone": "clone",
    "seconds_knowledge": "check-vector-db",
    "seconds_deepwiki": "trigger-deepwiki",
}


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _cost(cost: dict[str, Any] | None) -> dict[str, Any]:
    components = (cost or {}).get("components") or {}
    llm = (cost or {}).get("llm") or {}
    model = llm.get("model") or None
    return {
        "cost_total": None if cost is None else float(cost.get("total") or 0.0),
        **{f"cost_{name}": _number(components.get(name)) for name in _COMPONENTS},
        "llm_provider": llm.get("provider") or None,
        "llm_model": model,
        "llm_input_tokens": int(llm.get("inputTokens", 0)) if model else None,
        "llm_output_tokens": int(llm.get("outputTokens", 0)) if model else None,
    }


def _rows(row: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cost = (row.cost or {}) if row.has_cost else None
    timings: dict[str, Any] = row.timings or {}
    summary: dict[str, Any] = row.summary or {}
    stats = {
        "finished_at": row.finished_at,
        "analysis_id": row.id,
        "status": row.status,
        "mode": row.mode or row.requested_mode,
        "repository_url": row.repository_url,
        "trace_id": row.trace_id,
        "queue_seconds": None if row.started_at is None else row.started_at - row.created_at,
        **_cost(cost),
        "auto_mode": (summary.get("diff") or {}).get("autoMode"),
        "size_class": (summary.get("profile") or {}).get("sizeClass") or "unknown",
        **{column: _number(timings.get(step)) for column, step in _TIMED_STEPS.items()},
    }
    infra = None if cost is None else stats["cost_infrastructure"] or 0.0
    agents = [
        {
            "finished_at": row.finished_at,
            "analysis_id": row.id,
            "agent": step.removeprefix("agent:"),
            "seconds": float(seconds),
            "analysis_seconds": stats["seconds_total"],
            "cost_infrastructure": infra,
        }
        for step, seconds in timings.items()
        if step.startswith("agent:")
    ]
    return stats, agents


def _backfill(conn: sa.Connection, batch: int = 5_000) -> None:
    columns = [*(c for c in _analyses.c), _analyses.c.cost.is_not(None).label("has_cost")]
    rows = conn.execute(sa.select(*columns).where(_analyses.c.finished_at.is_not(None))).fetchall()
    stats_table = sa.table("analysis_stats", *(sa.column(n) for n in _rows_columns()))
    agents_table = sa.table(
        "analysis_agent_times",
        *(sa.column(n) for n in ("finished_at", "analysis_id", "agent", "seconds",
                                 "analysis_seconds", "cost_infrastructure")),
    )  # fmt: skip
    for i in range(0, len(rows), batch):
        built = [_rows(r) for r in rows[i : i + batch]]
        conn.execute(stats_table.insert(), [s for s, _ in built])
        agent_rows = [a for _, agents in built for a in agents]
        if agent_rows:
            conn.execute(agents_table.insert(), agent_rows)


def _rows_columns() -> tuple[str, ...]:
    return (
        "finished_at", "analysis_id", "status", "mode", "repository_url", "trace_id",
        "queue_seconds", "cost_total", *(f"cost_{n}" for n in _COMPONENTS), "llm_provider",
        "llm_model", "llm_input_tokens", "llm_output_tokens", "auto_mode", "size_class",
        *_TIMED_STEPS,
    )  # fmt: skip
