"""Embedded metric history: series, label postings, compressed sample chunks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tsdb_series",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "tsdb_postings",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.Column("series_id", _BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(["series_id"], ["tsdb_series.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("name", "value", "series_id"),
    )
    op.create_table(
        "tsdb_chunks",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("series_id", _BIG_ID, nullable=False),
        sa.Column("min_t", sa.BigInteger(), nullable=False),
        sa.Column("max_t", sa.BigInteger(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["series_id"], ["tsdb_series.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tsdb_chunks_series_max_t", "tsdb_chunks", ["series_id", "max_t"])
    op.create_index("ix_tsdb_chunks_max_t", "tsdb_chunks", ["max_t"])


def downgrade() -> None:
    op.drop_index("ix_tsdb_chunks_max_t", table_name="tsdb_chunks")
    op.drop_index("ix_tsdb_chunks_series_max_t", table_name="tsdb_chunks")
    op.drop_table("tsdb_chunks")
    op.drop_table("tsdb_postings")
    op.drop_table("tsdb_series")
