"""Resource usage of tracked units of work (an analysis, a DeepWiki run), one row per run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from codequal.storage.db import Database
from codequal.storage.schema import work_units


@dataclass(frozen=True, slots=True)
class WorkUnitRecord:
    """What one run of a unit of work cost. ``started_at`` is UTC epoch seconds; ``outcome``
    is ``ok`` or ``error``."""

    kind: str
    unit_id: str
    trace_id: str | None
    started_at: float
    wall_seconds: float
    cpu_seconds: float
    peak_memory_delta_bytes: int
    outcome: str


_COLUMNS = (
    "kind",
    "unit_id",
    "trace_id",
    "started_at",
    "wall_seconds",
    "cpu_seconds",
    "peak_memory_delta_bytes",
    "outcome",
)


def _row(record: WorkUnitRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _COLUMNS}


class WorkStore:
    """Insert work-unit rows in batches; read the runs of one unit."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def write(self, records: Iterable[WorkUnitRecord]) -> None:
        """Insert ``records`` in one transaction."""
        rows = [_row(r) for r in records]
        if rows:
            with self._db.engine.begin() as conn:
                conn.execute(work_units.insert(), rows)

    def for_unit(self, kind: str, unit_id: str) -> list[WorkUnitRecord]:
        """Every recorded run of ``(kind, unit_id)``, oldest first."""
        query = (
            sa.select(*(work_units.c[name] for name in _COLUMNS))
            .where(work_units.c.kind == kind, work_units.c.unit_id == unit_id)
            .order_by(work_units.c.started_at, work_units.c.id)
        )
        with self._db.engine.connect() as conn:
            return [WorkUnitRecord(**row._mapping) for row in conn.execute(query)]
