"""Store sink: batched inserts into the embedded store, queryable through the API."""

from __future__ import annotations

from collections.abc import Sequence

from codequal.telemetry.logging import LogEntry
from codequal.telemetry.sinks.context import SinkContext
from codequal.telemetry.stores.logs import LogStore


class StoreSink:
    name = "store"

    def __init__(self, store: LogStore) -> None:
        self._store = store

    def write(self, entries: Sequence[LogEntry]) -> None:
        self._store.write(entries)

    def close(self) -> None:
        """Nothing buffered here: every batch is committed by write()."""


def from_context(ctx: SinkContext) -> StoreSink | None:
    """On whenever there is a database: the entries the API and the dashboard read."""
    return StoreSink(LogStore(ctx.db)) if ctx.db is not None else None
