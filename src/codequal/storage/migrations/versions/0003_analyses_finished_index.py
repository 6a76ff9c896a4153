"""Index analyses by finish time: the dashboards read the last hour and day by it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_analyses_finished", "analyses", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_analyses_finished", table_name="analyses")
