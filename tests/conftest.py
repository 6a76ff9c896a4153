"""Shared fixtures: real databases (SQLite in a temp dir, PostgreSQL at 127.0.0.1:5432)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from codequal.storage import Database, open_database

PG_ADMIN_URL = os.environ.get(
    "CODEQUAL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CODEQUAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


# A test server must never bind OTLP/gRPC's well-known port 4317, which a real collector or
# another test run on this machine may hold: servers (in process, and `codequal serve`
# subprocesses, which inherit this) start without it, and gRPC tests pass a free port.
os.environ.setdefault("CODEQUAL_OTLP_GRPC_PORT", "0")

REQUIRE_SERVICES = os.environ.get("CODEQUAL_REQUIRE_SERVICES") == "1"


def service_missing(what: str, exc: Exception) -> None:
    """Skip on a developer machine without the service; fail in CI, where it must be up."""
    message = f"{what} is not reachable ({exc}); start it or unset CODEQUAL_REQUIRE_SERVICES"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema in the `test` database."""
    schema = f"cq_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL)
    try:
        admin.connect().close()
    except sa.exc.OperationalError as exc:
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        drop_schema(admin, schema)
        admin.dispose()


def drop_schema(admin: sa.Engine, schema: str, attempts: int = 5) -> None:
    """Drop a test schema; a background writer of the app under test that is still finishing
    (a span or log flush) can deadlock with the drop once, so it is tried again."""
    for attempt in range(attempts):
        try:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except sa.exc.OperationalError as exc:
            if "deadlock detected" not in str(exc) or attempt == attempts - 1:
                raise


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each engine the storage layer supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'codequal.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database on SQLite and on PostgreSQL (the test runs once for each)."""
    db = open_database(database_url)
    db.migrate()
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def redis_url() -> str:
    """The real Redis at 127.0.0.1:6379 (database 15, which the tests may flush)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing("Redis at 127.0.0.1:6379", exc)
    finally:
        client.close()
    return REDIS_URL


TEST_JWT_SECRET = "codequal-test-secret-" + "s" * 32


def bearer(*scopes: str, subject: str = "tester") -> dict[str, str]:
    """Authorization header with an HS256 token signed by TEST_JWT_SECRET."""
    from codequal.security import mint_token

    token = mint_token(TEST_JWT_SECRET, subject, list(scopes), 3600)
    return {"Authorization": f"Bearer {token}"}
