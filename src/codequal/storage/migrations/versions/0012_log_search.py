"""Full-text search over log entries: the message (action), the error and the fields.

``GET /api/monitoring/logs?q=`` used to scan ``action`` alone. The searched text is the action,
the error (type, message, stack) and the metadata (fields, Loki labels, OTLP attributes) as
JSON, its first 8 KiB, matched as a case-insensitive substring through an index:

- SQLite: a contentless FTS5 table with the trigram tokenizer (SQLite 3.34+), filled by the
  log store in the transaction that inserts the entries (one INSERT ... SELECT per batch: a
  trigger, one FTS5 insert per row, wrote 5x slower). A phrase query of three or more
  characters is answered from the index.
- PostgreSQL: a GIN trigram index (pg_trgm) over the same text, which ``ILIKE '%q%'`` uses.
  A word index (tsvector) would not find ``ion 3`` in ``action 3``, which ``q`` always found.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_log = logging.getLogger(__name__)

# The searched text, written out in each statement (the backfill, the index); the log store
# writes it the same way.
_BACKFILL = """
INSERT INTO log_search(rowid, body) SELECT id, substr(
  action || char(10) || coalesce(error, '') || char(10) || coalesce(metadata, ''), 1, 8192)
FROM log_entries
"""
_PG_INDEX = """
CREATE INDEX ix_log_entries_search ON log_entries USING gin ((left(
  action || E'\\n' || coalesce(error::text, '') || E'\\n' || coalesce(metadata::text, ''),
  8192)) {schema}.gin_trgm_ops)
"""
# The extension lives in one schema per database, maybe not one on CodeQual's search_path.
_PG_TRGM_SCHEMA = """
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_trgm'
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE log_search USING fts5(body, tokenize='trigram', content='')"
        )
        op.execute(_BACKFILL)
        return
    bind = op.get_bind()
    try:
        with bind.begin_nested():  # a savepoint: a refused extension must not abort migrating
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        _log.warning(
            "pg_trgm is not available to this database user: log search (q) will scan. "
            "Run CREATE EXTENSION pg_trgm as a superuser, then the index is created at the next "
            "start by re-running this migration (alembic downgrade 0009, upgrade head)."
        )
        return
    schema = bind.execute(sa.text(_PG_TRGM_SCHEMA)).scalar_one()
    op.execute(_PG_INDEX.format(schema=bind.dialect.identifier_preparer.quote_identifier(schema)))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS log_search")
        return
    op.execute("DROP INDEX IF EXISTS ix_log_entries_search")
