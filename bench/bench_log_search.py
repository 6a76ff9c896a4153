"""``GET /api/monitoring/logs?q=`` on 1 000 000 log entries: the search index against a scan.

The entries are written through LogStore (so the search trigger / index is maintained as in
production), then each query asks for the newest 100 matches, as the API does: through the
index (LogStore.query) and as the scan it replaced (LIKE over the same text, no index). Also
reports the write rate with the index in place. SQLite always; PostgreSQL too when
CODEQUAL_BENCH_PG_URL names a database (a fresh schema is made and dropped).

Run: python bench/bench_log_search.py [entries]
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from codequal.storage.db import Database, open_database
from codequal.telemetry.logging import ErrorInfo, LogEntry
from codequal.telemetry.stores import logs as logs_module
from codequal.telemetry.stores.logs import LogQuery, LogStore

ENTRIES = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
BATCH = 5_000
QUERIES = {
    "rare error type (0.1%)": "CloneError",
    "one repository (~0.01%)": "octo/repo-4242",
    "common word (~20%)": "deepwiki",
    "absent": "no-such-text-anywhere",
}
ACTIONS = (
    "analysis step finished",
    "deepwiki refresh done",
    "http request",
    "agent completed",
    "cache miss",
)


def entries(n: int, rng: random.Random) -> list[LogEntry]:
    out = []
    for i in range(n):
        error = None
        if rng.random() < 0.001:
            error = ErrorInfo(
                "CloneError", f"git clone of octo/repo-{rng.randrange(10_000)} failed"
            )
        out.append(
            LogEntry(
                timestamp=1_700_000_000.0 + i,
                level="error" if error else "info",
                service=rng.choice(("api", "worker", "deepwiki")),
                trace_id=f"{rng.getrandbits(128):032x}",
                action=rng.choice(ACTIONS),
                error=error,
                metadata={
                    "repository": f"octo/repo-{rng.randrange(10_000)}",
                    "duration_ms": rng.randrange(2_000),
                    "route": rng.choice(("/api/analyses", "/health", "/v1/traces")),
                },
            )
        )
    return out


def fill(db: Database) -> float:
    store, rng = LogStore(db), random.Random(7)
    written, seconds = 0, 0.0
    while written < ENTRIES:
        batch = entries(min(BATCH, ENTRIES - written), rng)
        started = time.perf_counter()
        store.write(batch)
        seconds += time.perf_counter() - started
        written += len(batch)
    return ENTRIES / seconds


def timed(run: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def scan(db: Database, text: str) -> list[object]:
    """The same question without the index: LIKE over the searched text, newest 100."""
    t = logs_module.log_entries
    searched = (
        logs_module._PG_SEARCH_TEXT
        if db.dialect == "postgresql"
        else logs_module._SQLITE_SEARCH_TEXT
    )
    op = searched.ilike if db.dialect == "postgresql" else searched.like
    stmt = sa.select(t.c.id).where(op(f"%{text}%")).order_by(t.c.id.desc()).limit(100)
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SET enable_bitmapscan = off"))
            conn.execute(sa.text("SET enable_indexscan = on"))
        return list(conn.execute(stmt))


def report(name: str, db: Database) -> None:
    rate = fill(db)
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(sa.text("ANALYZE log_entries"))
    store = LogStore(db)
    print(f"\n{name}: {ENTRIES:,} entries written at {rate:,.0f} entries/s (index maintained)")
    print(f"{'query':<26} {'matches':>8} {'index ms':>10} {'scan ms':>10} {'speed-up':>9}")
    for label, text in QUERIES.items():
        found = store.query(LogQuery(text=text, limit=100))
        indexed = timed(lambda text=text: store.query(LogQuery(text=text, limit=100)))
        scanned = timed(lambda text=text: scan(db, text), repeat=1)
        print(
            f"{label:<26} {len(found):>8} {indexed * 1000:>10.1f} {scanned * 1000:>10.1f} "
            f"{scanned / indexed:>8.1f}x"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        report("SQLite (FTS5 trigram)", db)
        db.dispose()
    pg = os.environ.get("CODEQUAL_BENCH_PG_URL")
    if pg:
        schema = f"cq_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(pg)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            db = open_database(f"{pg}?options=-csearch_path%3D{schema}")
            db.migrate()
            report("PostgreSQL (pg_trgm GIN)", db)
            db.dispose()
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
