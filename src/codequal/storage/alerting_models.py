"""Tables of the notifier: alert history, notification attempts, silences, group state.

They join :data:`codequal.storage.models.metadata`, so the migrations and ``create_all`` see
them; import this module wherever the full schema is needed (the migration env, the store).
"""

from __future__ import annotations

import sqlalchemy as sa

from codequal.storage.models import BigId, Json, metadata

# Immutable lifecycle events: the alert history, and what a restart rebuilds the state from.
alert_transitions = sa.Table(
    "alert_transitions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("alertname", sa.String(200), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=False),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("alert", Json, nullable=False),
    sa.Index("ix_alert_transitions_at", "at"),
    sa.Index("ix_alert_transitions_fingerprint_id", "fingerprint", "id"),
)

# One row per message: created at its first attempt, updated by each retry.
alert_notifications = sa.Table(
    "alert_notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("channel", sa.String(50), nullable=False),
    sa.Column("group_key", sa.String(500), nullable=False),
    sa.Column("alertname", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # firing | resolved
    sa.Column("reason", sa.String(16), nullable=False),  # new | changed | resolved | repeat ...
    sa.Column("fingerprints", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # sent | failed | retrying | suppressed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Column("next_attempt_at", sa.Float),
    sa.Index("ix_alert_notifications_created", "created_at"),
    sa.Index("ix_alert_notifications_channel_id", "channel", "id"),
)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("matchers", Json, nullable=False),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expired", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_silences_ends_at", "ends_at"),
)

# What each channel last sent for each alert group; flushed_at doubles as the claim token that
# keeps two processes on one PostgreSQL from sending the same message.
alert_group_state = sa.Table(
    "alert_group_state",
    metadata,
    sa.Column("group_key", sa.String(500), primary_key=True),
    sa.Column("channel", sa.String(50), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("flushed_at", sa.Float),
    sa.Column("notified_at", sa.Float),
    sa.Column("notified", Json, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, server_default=""),
)
