"""alerting: alert transitions, notification attempts, silences, notification group state

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_transitions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("alertname", sa.String(length=200), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("alert", _JSON, nullable=False),
    )
    op.create_index("ix_alert_transitions_at", "alert_transitions", ["at"])
    op.create_index(
        "ix_alert_transitions_fingerprint_id", "alert_transitions", ["fingerprint", "id"]
    )
    op.create_table(
        "alert_notifications",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("channel", sa.String(length=50), nullable=False),
        sa.Column("group_key", sa.String(length=500), nullable=False),
        sa.Column("alertname", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("fingerprints", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_alert_notifications_created", "alert_notifications", ["created_at"])
    op.create_index("ix_alert_notifications_channel_id", "alert_notifications", ["channel", "id"])
    op.create_table(
        "silences",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("matchers", _JSON, nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expired", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])
    op.create_table(
        "alert_group_state",
        sa.Column("group_key", sa.String(length=500), primary_key=True),
        sa.Column("channel", sa.String(length=50), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("flushed_at", sa.Float(), nullable=True),
        sa.Column("notified_at", sa.Float(), nullable=True),
        sa.Column("notified", _JSON, nullable=False),
        sa.Column("digest", sa.String(length=64), server_default="", nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_group_state")
    op.drop_index("ix_silences_ends_at", table_name="silences")
    op.drop_table("silences")
    op.drop_index("ix_alert_notifications_channel_id", table_name="alert_notifications")
    op.drop_index("ix_alert_notifications_created", table_name="alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_index("ix_alert_transitions_fingerprint_id", table_name="alert_transitions")
    op.drop_index("ix_alert_transitions_at", table_name="alert_transitions")
    op.drop_table("alert_transitions")
