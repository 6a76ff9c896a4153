"""Persistence: schema, migrations and the engine for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

from codequal.storage.db import Database, open_database

__all__ = ["Database", "open_database"]
