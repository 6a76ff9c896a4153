"""The one schema: every table of CodeQual, as SQLAlchemy Core, for the stores and migrations.

Each part owns the queries over its tables in its own store module (telemetry/stores/,
analysis/store.py, alerting/store.py, analytics/store.py, security/keys.py, tsdb/store.py); the
tables themselves are declared here, once, so the migrations and ``create_all`` see them all.
Timestamps are UTC epoch seconds (double precision): cheap to compare and identical on SQLite
and PostgreSQL; the metric history keeps Prometheus's integer milliseconds.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

# JSON in SQLite, JSONB in PostgreSQL.
Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrement needs INTEGER

# -- telemetry, analyses, keys ------------------------------------------------------------------
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

# -- authentication (issue: monitoring API) -----------------------------------------------------
# Service keys for machine clients: only a SHA-256 of the secret is stored. The token a client
# presents is "cq_<key_id>_<secret>"; key_id finds the row, the hash is compared in constant time.
service_keys = sa.Table(
    "service_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.String(500), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, server_default="service"),
    sa.Column("project_id", sa.Integer),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
)

# -- the monitored pipeline -------------------------------------------------------------------
analyses = sa.Table(
    "analyses",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("repository_url", sa.String(1000), nullable=False),
    # Credentials taken out of the repository URL, sealed; erased when the analysis ends.
    sa.Column("repository_secret", sa.Text),
    sa.Column("base", sa.String(250), nullable=False),
    sa.Column("head", sa.String(250), nullable=False),
    sa.Column("pr_number", sa.Integer),
    sa.Column("requested_mode", sa.String(16), nullable=False),
    sa.Column("mode", sa.String(16)),
    sa.Column("mode_reason", sa.String(500)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step", sa.String(50)),
    sa.Column("user_id", sa.String(200)),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("worker_id", sa.String(100)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_type", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("timings", Json),
    sa.Column("cost", Json),
    sa.Column("cost_total", sa.Float),
    sa.Column("summary", Json),
    sa.Index("ix_analyses_status_created", "status", "created_at"),
    sa.Index("ix_analyses_created", "created_at"),
    sa.Index("ix_analyses_repository", "repository_url"),
    # Covering: the dashboard reads the last day's finished analyses from the index alone.
    sa.Index(
        "ix_analyses_finished_cover",
        *("finished_at", "status", "mode", "requested_mode", "started_at"),
    ),
    sa.Index("ix_analyses_status_finished", "status", "finished_at"),
)

findings = sa.Table(
    "findings",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "analysis_id",
        sa.String(32),
        sa.ForeignKey("analyses.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("file", sa.String(1000), nullable=False),
    sa.Column("line", sa.Integer),
    sa.Column("rule", sa.String(100), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("agent", sa.String(50), nullable=False),
    sa.Column("end_line", sa.Integer),
    # False: on code the PR did not touch ("existing"), reported only when asked for.
    sa.Column("is_new", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("help_uri", sa.String(500)),
    sa.Index("ix_findings_analysis", "analysis_id"),
)

deepwiki_cleanups = sa.Table(
    "deepwiki_cleanups",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("path", sa.String(1000), nullable=False),
    sa.Column("reason", sa.String(50), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("bytes_freed", sa.BigInteger, nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_deepwiki_cleanups_ts", "ts"),
)

# -- analytics read model (issue #6) ----------------------------------------------------------
# The numbers cost analytics and insights aggregate, copied out of each finished analysis's
# JSON (cost, timings, summary) when it is stored, so a period's report is SQL sums and
# index walks instead of decoding every row. Clustered by finish time on SQLite (WITHOUT
# ROWID), so a period is one contiguous range; the other indexes cover the queries that
# read in another order (a percentile steps along its value, a per-repository sum along the
# repositories), so they never sort (see storage/analytics_totals.py).
# Grouped by the first four, summing the rest: the breakdowns by mode, provider and model.
_COST_GROUP_COLUMNS = ("mode", "status", "llm_provider", "llm_model", "finished_at", "cost_total",
                       "cost_infrastructure", "cost_deepwiki", "cost_llm", "llm_input_tokens",
                       "llm_output_tokens")  # fmt: skip
analysis_stats = sa.Table(
    "analysis_stats",
    metadata,
    sa.Column("finished_at", sa.Float, primary_key=True),
    sa.Column("analysis_id", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),  # the mode run, else the one requested
    sa.Column("repository_url", sa.String(1000), nullable=False),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("queue_seconds", sa.Float),  # started_at - created_at
    sa.Column("cost_total", sa.Float),  # NULL: the analysis stored no cost
    sa.Column("cost_infrastructure", sa.Float),
    sa.Column("cost_deepwiki", sa.Float),
    sa.Column("cost_llm", sa.Float),
    sa.Column("llm_provider", sa.String(100)),
    sa.Column("llm_model", sa.String(200)),
    sa.Column("llm_input_tokens", sa.BigInteger),
    sa.Column("llm_output_tokens", sa.BigInteger),
    sa.Column("auto_mode", sa.String(16)),
    sa.Column("size_class", sa.String(50), nullable=False),  # "unknown" when not profiled
    # timings; NULL when the step did not run
    sa.Column("seconds_total", sa.Float),
    sa.Column("seconds_clone", sa.Float),
    sa.Column("seconds_knowledge", sa.Float),  # check-vector-db
    sa.Column("seconds_deepwiki", sa.Float),  # trigger-deepwiki
    sa.Index("ix_analysis_stats_cost", "cost_total", "finished_at"),
    sa.Index("ix_analysis_stats_cost_groups", *_COST_GROUP_COLUMNS),
    sa.Index("ix_analysis_stats_mode_cost", "mode", "status", "cost_total", "finished_at"),
    sa.Index("ix_analysis_stats_movable", "mode", "auto_mode", "cost_total", "finished_at"),
    sa.Index(
        "ix_analysis_stats_repository",
        "repository_url",
        "finished_at",
        "cost_total",
        "seconds_deepwiki",
    ),
    sa.Index("ix_analysis_stats_knowledge", "seconds_knowledge", "finished_at"),
    sa.Index("ix_analysis_stats_clone", "size_class", "seconds_clone", "finished_at"),
    sa.Index("ix_analysis_stats_queue", "queue_seconds", "finished_at"),
    sqlite_with_rowid=False,
)

# One row per agent run of a finished analysis. The analysis's total time and infrastructure
# cost are repeated here so the cost-by-agent split is one grouped sum, without a join.
analysis_agent_times = sa.Table(
    "analysis_agent_times",
    metadata,
    sa.Column("finished_at", sa.Float, primary_key=True),
    sa.Column("analysis_id", sa.String(32), primary_key=True),
    sa.Column("agent", sa.String(100), primary_key=True),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("analysis_seconds", sa.Float),
    sa.Column("cost_infrastructure", sa.Float),
    sa.Index(
        "ix_analysis_agent_times_agent",
        "agent",
        "seconds",
        "finished_at",
        "analysis_seconds",
        "cost_infrastructure",
    ),
    sqlite_with_rowid=False,
)


# -- the notifier: alert history, notification attempts, silences, group state --------------
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


# -- the embedded metric history (tsdb/store.py); times in integer milliseconds -------------
# One row per series: the metric name plus its sorted labels. The fingerprint (a hash of the
# canonical label set) finds a series without comparing JSON.
tsdb_series = sa.Table(
    "tsdb_series",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(32), nullable=False, unique=True),
    sa.Column("labels", Json, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    # Never reuse a deleted id: the store caches ids (series) and decoded rows (chunks).
    sqlite_autoincrement=True,
)

# The label index: one row per (label, value, series), so equality matchers run in SQL. A bare
# index (migration 0013): no foreign key, no rowid on SQLite; retention deletes a series'
# postings with the series.
tsdb_postings = sa.Table(
    "tsdb_postings",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.String(1024), primary_key=True),
    sa.Column("series_id", BigId, primary_key=True),
    sqlite_with_rowid=False,
)

# A run of one series' samples, compressed (codequal.tsdb.chunks): one row per ~2 h, not per
# sample. The series' in-memory head chunk is rewritten in place until it is full.
tsdb_chunks = sa.Table(
    "tsdb_chunks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "series_id",
        BigId,
        sa.ForeignKey("tsdb_series.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("min_t", sa.BigInteger, nullable=False),
    sa.Column("max_t", sa.BigInteger, nullable=False),
    sa.Column("samples", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    # Reads ask for the chunks of some series ending after a time: recent ones, mostly.
    sa.Index("ix_tsdb_chunks_series_max_t", "series_id", "max_t"),
    sa.Index("ix_tsdb_chunks_max_t", "max_t"),  # retention
    sqlite_autoincrement=True,
)


# -- anomaly windows (analytics/anomaly_store.py) --------------------------------------------
anomalies = sa.Table(
    "anomalies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("detector", sa.String(64), nullable=False),
    sa.Column("series", sa.String(64), nullable=False),
    sa.Column("start", sa.Float, nullable=False),
    sa.Column("end", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("record", Json, nullable=False),  # Anomaly.to_json()
    sa.Column("alert_status", sa.String(16), nullable=True),  # firing / resolved / None
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("detector", "series", "start", name="uq_anomalies_window"),
    sa.Index("ix_anomalies_start", "start"),
)


# -- state that must survive a restart (rule evaluation, watermarks) ------------------------
kv_state = sa.Table(
    "kv_state",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", Json, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
