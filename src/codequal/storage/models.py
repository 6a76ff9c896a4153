"""The schema, as SQLAlchemy Core tables shared by the repositories and the migrations.

Timestamps are UTC epoch seconds (double precision): cheap to compare and identical on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

# JSON in SQLite, JSONB in PostgreSQL.
Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrement needs INTEGER

log_entries = sa.Table(
    "log_entries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("service", sa.String(100), nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("user_id", sa.String(200)),
    sa.Column("repository_url", sa.String(1000)),
    sa.Column("action", sa.String(500), nullable=False),
    sa.Column("duration", sa.Float),
    sa.Column("error", Json),
    sa.Column("metadata", Json),
    sa.Index("ix_log_entries_ts", "ts"),
    sa.Index("ix_log_entries_trace_id", "trace_id"),
    sa.Index("ix_log_entries_level_ts", "level", "ts"),
)

error_issues = sa.Table(
    "error_issues",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("type", sa.String(200), nullable=False),
    sa.Column("title", sa.String(1000), nullable=False),
    sa.Column("culprit", sa.String(500)),
    sa.Column("level", sa.String(8), nullable=False, server_default="error"),
    sa.Column("status", sa.String(16), nullable=False, server_default="unresolved"),
    sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
    sa.Column("regressed_at", sa.Float),
    sa.Index("ix_error_issues_last_seen", "last_seen"),
)

error_events = sa.Table(
    "error_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(32), nullable=False, unique=True),
    sa.Column(
        "issue_id", BigId, sa.ForeignKey("error_issues.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("payload", Json, nullable=False),
    sa.Index("ix_error_events_issue_ts", "issue_id", "ts"),
)

spans = sa.Table(
    "spans",
    metadata,
    sa.Column("trace_id", sa.String(32), primary_key=True),
    sa.Column("span_id", sa.String(16), primary_key=True),
    sa.Column("parent_span_id", sa.String(16)),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("service", sa.String(100), nullable=False),
    sa.Column("start_ts", sa.Float, nullable=False),
    sa.Column("end_ts", sa.Float, nullable=False),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("status_message", sa.Text),
    sa.Column("attributes", Json),
    sa.Column("events", Json),
    sa.Index("ix_spans_start_ts", "start_ts"),
)

work_units = sa.Table(
    "work_units",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("unit_id", sa.String(200), nullable=False),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("wall_seconds", sa.Float, nullable=False),
    sa.Column("cpu_seconds", sa.Float, nullable=False),
    sa.Column("peak_memory_delta_bytes", sa.BigInteger, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Index("ix_work_units_kind_unit", "kind", "unit_id"),
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("source", sa.String(50), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("payload", Json, nullable=False),
    sa.Index("ix_alert_events_ts", "ts"),
)

# The repository knowledge store (the plan's "vector DB"): one profile per repository.
knowledge_entries = sa.Table(
    "knowledge_entries",
    metadata,
    sa.Column("repository_url", sa.String(1000), primary_key=True),
    sa.Column("profile", Json, nullable=False),
    sa.Column("analysed_at", sa.Float, nullable=False),
)
