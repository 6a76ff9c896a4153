"""Analytics read model: each finished analysis's cost and timing numbers in real columns.

Cost analytics and insights decoded every analysis's JSON in Python (seconds for a busy
month); these tables let them aggregate in SQL. Existing analyses are backfilled.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from codequal.storage.analysis_stats import backfill_stats

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
    # The application's own extraction, so backfilled rows equal the ones finish() writes.
    # A later migration that adds a column here must backfill with its own copy instead.
    backfill_stats(op.get_bind())


def downgrade() -> None:
    op.drop_table("analysis_agent_times")
    op.drop_table("analysis_stats")
