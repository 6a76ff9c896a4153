"""Alembic environment: migrations run on the connection CodeQual hands over."""

from __future__ import annotations

from alembic import context

from codequal.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic` run by hand reaches this
    raise RuntimeError("run migrations through codequal.storage.db.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
