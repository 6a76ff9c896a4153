"""The embedded metric history's tables (see :mod:`codequal.tsdb.store`).

Added to :data:`codequal.storage.models.metadata`, so Alembic and the test schema see them.
Times are integer milliseconds since the epoch, as in the PromQL engine and in Prometheus.
"""

from __future__ import annotations

import sqlalchemy as sa

from codequal.storage.models import BigId, Json, metadata

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

# The label index: one row per (label, value, series), so equality matchers run in SQL.
tsdb_postings = sa.Table(
    "tsdb_postings",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.String(1024), primary_key=True),
    sa.Column(
        "series_id",
        BigId,
        sa.ForeignKey("tsdb_series.id", ondelete="CASCADE"),
        primary_key=True,
    ),
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
