"""The embedded metric history on SQLite and PostgreSQL: chunks, heads, merges, retention."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from codequal.storage.db import MIGRATIONS, Database, open_database
from codequal.storage.schema import metadata, tsdb_chunks, tsdb_postings, tsdb_series
from codequal.tsdb import series_index
from codequal.tsdb.promql import STALE_NAN, Engine, Labels, Matcher, MatchOp, Vector, is_stale
from codequal.tsdb.store import SampleStore, store_for

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 7_200_000  # a 2 h chunk window starts here
STEP = 15_000
NAME = Matcher(MatchOp.EQUAL, "__name__", "req_total")


def req(mode: str, instance: str = "a:1") -> dict[str, str]:
    return {"__name__": "req_total", "mode": mode, "instance": instance, "job": "codequal"}


def feed(store: SampleStore, first: int, count: int, modes: tuple[str, ...] = ("a", "b")) -> None:
    for i in range(first, first + count):
        store.append([(req(m), T0 + i * STEP, float(i * (k + 1))) for k, m in enumerate(modes)])


def points(
    store: SampleStore, mode: str, start: int = T0, end: int = T0 + 10**9
) -> list[tuple[int, float]]:
    (series,) = store.select([NAME, Matcher(MatchOp.EQUAL, "mode", mode)], start, end)
    return series.points()


def chunk_rows(db: Database) -> list[tuple[int, int, int]]:
    with db.engine.connect() as conn:
        stmt = sa.select(tsdb_chunks.c.min_t, tsdb_chunks.c.max_t, tsdb_chunks.c.samples)
        return sorted((a, b, c) for a, b, c in conn.execute(stmt))


@pytest.fixture
def store(database: Database) -> Iterator[SampleStore]:
    yield SampleStore(database)


def test_samples_round_trip_through_memory_and_the_database(
    database: Database, store: SampleStore
) -> None:
    feed(store, 0, 1000)
    expected = [(T0 + i * STEP, float(i)) for i in range(1000)]
    assert points(store, "a") == expected  # all in memory
    assert store.flush().remaining == 0
    assert points(store, "a") == expected  # stored, the open chunk still in memory too
    assert points(SampleStore(database), "a") == expected  # another process: database only


def test_chunks_are_cut_at_2h_windows_and_at_the_sample_cap(database: Database) -> None:
    store = SampleStore(database, max_chunk_samples=300)
    feed(store, 0, 1000, modes=("a",))
    store.flush()
    window = 7_200_000
    assert chunk_rows(database) == [
        (T0, T0 + 299 * STEP, 300),  # the cap cuts first
        (T0 + 300 * STEP, T0 + 479 * STEP, 180),  # then the end of the window
        (T0 + window, T0 + window + 299 * STEP, 300),
        (T0 + window + 300 * STEP, T0 + window + 479 * STEP, 180),
        (T0 + 2 * window, T0 + 2 * window + 39 * STEP, 40),  # the open chunk, written as is
    ]


def test_the_open_chunk_is_rewritten_in_place_not_duplicated(
    database: Database, store: SampleStore
) -> None:
    feed(store, 0, 10, modes=("a",))
    store.flush()
    feed(store, 10, 10, modes=("a",))
    store.flush()
    assert chunk_rows(database) == [(T0, T0 + 19 * STEP, 20)]
    assert store.flush().written == 0  # nothing new: nothing written
    assert points(SampleStore(database), "a") == [(T0 + i * STEP, float(i)) for i in range(20)]


def test_reads_merge_stored_chunks_with_unflushed_samples(
    database: Database, store: SampleStore
) -> None:
    feed(store, 0, 600)
    store.flush()
    feed(store, 600, 100)  # crosses into the next window, none of it flushed
    window = points(store, "b", T0 + 590 * STEP, T0 + 610 * STEP)
    assert window == [(T0 + i * STEP, float(2 * i)) for i in range(590, 611)]
    assert len(points(store, "b")) == 700
    assert len(points(SampleStore(database), "b")) == 600


def test_overlapping_chunks_from_two_writers_merge_without_duplicates(database: Database) -> None:
    first, second = SampleStore(database), SampleStore(database)
    feed(first, 0, 100, modes=("a",))
    feed(second, 50, 100, modes=("a",))  # e.g. a backfill over live data
    first.flush()
    second.flush()
    got = points(SampleStore(database), "a")
    assert [t for t, _ in got] == [T0 + i * STEP for i in range(150)]


def test_series_created_by_another_writer_meanwhile_keep_their_ids_and_postings(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers (processes, replicas) that both found a new series missing: the second's
    insert is skipped, it answers the first's ids, and the postings are not doubled."""
    wanted = [Labels.of(req(f"m{i}", f"host-{i % 7}:9100")) for i in range(1_500)]
    with database.engine.begin() as conn:
        first = series_index.ensure_series(conn, wanted[:900], T0)
    looked_up = series_index._ids_by_fingerprint
    calls: list[int] = []

    def stale_first_look(conn: sa.Connection, fps: Sequence[str]) -> dict[str, int]:
        calls.append(len(fps))  # the first look-up happened before the other writer's commit
        return {} if len(calls) == 1 else looked_up(conn, fps)

    monkeypatch.setattr(series_index, "_ids_by_fingerprint", stale_first_look)
    with database.engine.begin() as conn:
        second = series_index.ensure_series(conn, wanted, T0)
    assert calls == [1_500, 900]  # the skipped inserts, looked up again
    assert {lb: second[lb] for lb in first} == first
    assert len(set(second.values())) == 1_500
    with database.engine.connect() as conn:
        postings = conn.execute(sa.select(sa.func.count()).select_from(tsdb_postings)).scalar()
    assert postings == sum(len(labels) for labels in wanted)
    store = SampleStore(database)
    store.append([(dict(lb), T0, 1.0) for lb in wanted])
    store.flush()
    host = Matcher(MatchOp.EQUAL, "instance", "host-3:9100")
    assert len(SampleStore(database).select([NAME, host], T0, T0 + 1)) == len(range(3, 1_500, 7))


def test_sqlite_before_returning_creates_series_by_looking_them_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 has no RETURNING: new series are inserted, then looked up."""
    monkeypatch.setattr(series_index.sqlite3, "sqlite_version_info", (3, 31, 1))
    database = open_database(f"sqlite:///{tmp_path / 'old.db'}")
    database.migrate()
    wanted = [Labels.of(req(f"m{i}")) for i in range(700)]
    with database.engine.begin() as conn:
        ids = series_index.ensure_series(conn, wanted, T0)
    with database.engine.begin() as conn:
        again = series_index.ensure_series(conn, [*wanted, Labels.of(req("new"))], T0)
    assert len(set(ids.values())) == 700
    assert {lb: again[lb] for lb in wanted} == ids
    store = SampleStore(database)
    store.append([(dict(lb), T0, 1.0) for lb in wanted])
    mode = Matcher(MatchOp.EQUAL, "mode", "m7")
    assert [s.labels for s in store.select([NAME, mode], T0, T0)] == [Labels.of(req("m7"))]


def test_appends_report_duplicates_and_out_of_order_samples(store: SampleStore) -> None:
    store.append([(req("a"), T0, 1.0)])
    result = store.append([(req("a"), T0, 1.0), (req("a"), T0 - 1, 2.0), (req("a"), T0, 3.0)])
    assert (result.appended, result.duplicates, result.out_of_order) == (0, 1, 2)
    too_long = dict(req("a"), path="x" * 2000)
    assert store.append([(too_long, T0, 1.0)]).rejected == 1


def test_a_quiet_series_comes_back_from_the_same_or_an_equal_labels_object(
    database: Database, store: SampleStore
) -> None:
    # Remote write hands the store the same Labels object for a series request after request,
    # and the store finds its head by that object's identity. Once the series has gone quiet
    # (its window over, all stored), its head is forgotten: neither that object nor an equal
    # one may then find the old head, or their samples would go nowhere.
    first = Labels.of(req("a"))
    store.append_resolved([(first, T0, 1.0)])
    later = T0 + 7_200_000  # the next 2 h window: "a" has gone quiet
    store.append_resolved([(Labels.of(req("b")), later, 1.0)])
    store.flush()
    assert store.append_resolved([(Labels.of(req("a")), later + STEP, 2.0)]).appended == 1
    assert store.append_resolved([(first, later + 2 * STEP, 3.0)]).appended == 1
    assert points(store, "a") == [(T0, 1.0), (later + STEP, 2.0), (later + 2 * STEP, 3.0)]
    store.flush()
    assert points(SampleStore(database), "a") == points(store, "a")


def test_matchers_run_in_sql_and_python_alike(store: SampleStore) -> None:
    feed(store, 0, 3, modes=("get", "put", "post"))
    store.append([({"__name__": "other", "mode": "get"}, T0, 1.0)])

    def modes(*matchers: Matcher) -> list[str]:
        return sorted(s.labels.get("mode") for s in store.select(list(matchers), T0, T0 + 10**6))

    assert modes(NAME, Matcher(MatchOp.NOT_EQUAL, "mode", "get")) == ["post", "put"]
    assert modes(NAME, Matcher(MatchOp.REGEX, "mode", "p.*")) == ["post", "put"]
    assert modes(NAME, Matcher(MatchOp.NOT_REGEX, "mode", "p.*")) == ["get"]
    assert modes(NAME, Matcher(MatchOp.EQUAL, "missing", "")) == ["get", "post", "put"]
    assert modes(NAME, Matcher(MatchOp.NOT_EQUAL, "missing", "")) == []
    assert modes(Matcher(MatchOp.EQUAL, "mode", "get")) == ["get", "get"]
    assert store.select([NAME], T0 + 10 * STEP, T0 + 20 * STEP) == []


def test_series_and_label_queries(store: SampleStore) -> None:
    feed(store, 0, 3, modes=("get", "put"))
    store.flush()
    store.append([({"__name__": "late", "zone": "z1"}, T0 + 10**7, 1.0)])  # memory only
    assert store.label_names() == ["__name__", "instance", "job", "mode", "zone"]
    assert store.label_values("mode") == ["get", "put"]
    assert store.label_values("__name__", [Matcher(MatchOp.EQUAL, "zone", "z1")]) == ["late"]
    assert store.series([NAME], T0, T0 + STEP) == sorted(Labels.of(req(m)) for m in ("get", "put"))
    assert store.series([NAME], T0 + 10 * STEP, T0 + 20 * STEP) == []
    late = store.series([Matcher(MatchOp.EQUAL, "__name__", "late")], T0 + 10**7, None)
    assert late == [Labels.of({"__name__": "late", "zone": "z1"})]
    assert store.label_names(start=T0 + 10**7) == ["__name__", "zone"]


def test_retention_drops_old_chunks_in_memory_and_in_the_database(
    database: Database, store: SampleStore
) -> None:
    feed(store, 0, 1500)  # three full windows and a bit
    store.flush()
    feed(store, 1500, 10)
    cut = T0 + 2 * 7_200_000
    deleted = store.delete_before(cut)
    assert deleted == 2 * 2  # two windows of two series
    assert points(store, "a")[0][0] == cut
    assert points(SampleStore(database), "a")[0][0] == cut
    store.append([({"__name__": "gone"}, T0, 1.0)])
    store.flush()
    store.delete_before(T0 + 10**9)
    with database.engine.connect() as conn:
        names = {row["__name__"] for row in conn.execute(sa.select(tsdb_series.c.labels)).scalars()}
    assert "gone" not in names  # an empty series row goes once older than the cut
    assert store.select([NAME], 0, T0 + 10**10) == []
    with database.engine.connect() as conn:  # and its postings with it: no foreign key does it
        left = conn.execute(sa.select(tsdb_postings.c.name, tsdb_postings.c.value)).all()
    assert ("__name__", "gone") not in left


def test_migration_0013_keeps_the_postings_and_downgrades(database: Database) -> None:
    store = SampleStore(database)
    store.append([(req(mode), T0, 1.0) for mode in ("get", "put")])
    store.flush()
    with database.engine.connect() as conn:
        before = sorted(conn.execute(sa.select(tsdb_postings)).all())
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diffs if "tsdb_postings" in repr(d)] == []
    assert len(before) == 8
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0012")
    assert sa.inspect(database.engine).get_foreign_keys("tsdb_postings") != []
    database.migrate()
    assert sa.inspect(database.engine).get_foreign_keys("tsdb_postings") == []
    with database.engine.connect() as conn:
        assert sorted(conn.execute(sa.select(tsdb_postings)).all()) == before
        if database.dialect == "sqlite":  # a bare index: the rowid is gone
            with pytest.raises(sa.exc.OperationalError, match="rowid"):
                conn.exec_driver_sql("SELECT rowid FROM tsdb_postings")
    get = Matcher(MatchOp.EQUAL, "mode", "get")
    assert [s.labels for s in SampleStore(database).select([NAME, get], T0, T0)] == [
        Labels.of(req("get"))
    ]


def test_flush_stops_at_its_deadline_and_finishes_later(store: SampleStore) -> None:
    feed(store, 0, 10, modes=tuple(f"m{i}" for i in range(30)))
    assert store.flush(timeout=-1) == (0, 30)
    assert store.flush(timeout=5) == (30, 0)


def test_the_engine_sees_a_series_go_stale_one_scrape_after_it_disappears(
    database: Database, store: SampleStore
) -> None:
    feed(store, 0, 10, modes=("a", "b"))
    store.append([(req("a"), T0 + 10 * STEP, 10.0), (req("b"), T0 + 10 * STEP, STALE_NAN)])
    store.flush()
    engine = Engine(store)
    before = engine.instant("req_total", T0 + 9 * STEP)
    after = engine.instant("req_total", T0 + 10 * STEP)
    assert isinstance(before, Vector) and isinstance(after, Vector)
    assert sorted(s.labels.get("mode") for s in before) == ["a", "b"]
    assert [s.labels.get("mode") for s in after] == ["a"]  # not 5 minutes of lookback later
    (stored,) = SampleStore(database).select(
        [NAME, Matcher(MatchOp.EQUAL, "mode", "b")], T0, T0 + 10**6
    )
    assert is_stale(stored.values[-1]) and not math.isnan(stored.values[0])


def test_one_store_per_database_in_a_process(database: Database) -> None:
    assert store_for(database) is store_for(database)
