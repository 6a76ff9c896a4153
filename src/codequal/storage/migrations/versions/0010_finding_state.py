"""Diff-aware findings: each finding's line range end, whether the PR introduced it, its
fingerprint (identity across commits, for SARIF's partialFingerprints) and a help link.

Findings stored before this revision were all reported as the PR's own: they stay new.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch_op:
        batch_op.add_column(sa.Column("end_line", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("is_new", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("help_uri", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch_op:
        batch_op.drop_column("help_uri")
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("is_new")
        batch_op.drop_column("end_line")
