"""A small key → JSON document table for state that must survive a restart (rule evaluation)."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from codequal.storage.db import Database
from codequal.storage.schema import kv_state


class KeyValueStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> Any | None:
        with self._db.engine.connect() as conn:
            return conn.execute(sa.select(kv_state.c.value).where(kv_state.c.key == key)).scalar()

    def put(self, key: str, value: Any) -> None:
        now = time.time()
        with self._db.engine.begin() as conn:
            updated = conn.execute(
                kv_state.update().where(kv_state.c.key == key).values(value=value, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(kv_state.insert(), {"key": key, "value": value, "updated_at": now})
