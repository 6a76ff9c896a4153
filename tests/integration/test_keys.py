"""Service keys on SQLite and PostgreSQL: hash-only storage, verify, last use, revoke, the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from codequal.cli.keys_cmd import keys
from codequal.security import AuthError, Principal
from codequal.security.key_store import LAST_USED_INTERVAL, KeyStore
from codequal.storage import Database
from codequal.storage.schema import service_keys

NOW = 1_800_000_000.0


@pytest.fixture
def store(database: Database) -> KeyStore:
    return KeyStore(database)


def stored_rows(database: Database) -> list[dict[str, Any]]:
    with database.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(service_keys))]


def reason_of(store: KeyStore, token: str, now: float = NOW) -> str:
    with pytest.raises(AuthError) as caught:
        store.verify(token, now=now)
    return caught.value.reason


def test_only_a_hash_of_the_secret_is_stored_and_the_token_appears_nowhere(
    store: KeyStore, database: Database
) -> None:
    record, token = store.create("ci", ["analyses:write"], now=NOW)
    prefix, key_id, secret = token.split("_", 2)
    assert (prefix, key_id) == ("cq", record.key_id)
    assert len(secret) >= 40
    (row,) = stored_rows(database)
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    dumped = repr(row)
    assert token not in dumped
    assert secret not in dumped
    assert row["scopes"] == "analyses:write"
    assert row["created_at"] == NOW
    assert row["last_used_at"] is None


def test_a_key_verifies_as_a_principal_with_its_scopes(store: KeyStore) -> None:
    record, token = store.create("ci", ["analyses:write monitoring:read"], now=NOW)
    assert store.verify(token, now=NOW + 1) == Principal(
        subject="key:ci",
        scopes=frozenset({"analyses:write", "monitoring:read"}),
        via="key",
        key_id=record.key_id,
    )


def test_each_use_updates_last_used_at_but_writes_at_most_every_few_seconds(
    store: KeyStore,
) -> None:
    _, token = store.create("ci", ["monitoring:read"], now=NOW)
    store.verify(token, now=NOW + 10)
    assert store.list()[0].last_used_at == NOW + 10
    store.verify(token, now=NOW + 10 + LAST_USED_INTERVAL / 2)
    assert store.list()[0].last_used_at == NOW + 10
    store.verify(token, now=NOW + 10 + LAST_USED_INTERVAL)
    assert store.list()[0].last_used_at == NOW + 10 + LAST_USED_INTERVAL


def test_a_wrong_secret_and_an_unknown_id_are_indistinguishable(store: KeyStore) -> None:
    record, token = store.create("ci", ["monitoring:read"], now=NOW)
    assert reason_of(store, token[:-1] + ("A" if token[-1] != "A" else "B")) == "unknown_key"
    assert reason_of(store, f"cq_{'0' * 16}_whatever") == "unknown_key"
    assert store.get(record.key_id) is not None
    assert store.list()[0].last_used_at is None  # failed attempts are not "uses"


@pytest.mark.parametrize(
    "token", ["cq_", "cq_abc_def", "cq_0123456789abcdef_", "cq_0123456789ABCDEF_x", "xx_1_2"]
)
def test_tokens_not_of_the_key_form_are_malformed(store: KeyStore, token: str) -> None:
    assert reason_of(store, token) == "malformed"


def test_a_revoked_key_is_refused_by_name_or_by_id(store: KeyStore) -> None:
    first, first_token = store.create("first", ["monitoring:read"], now=NOW)
    _, second_token = store.create("second", ["monitoring:read"], now=NOW)
    revoked = store.revoke("first", now=NOW + 5)
    assert revoked.revoked and revoked.revoked_at == NOW + 5
    assert reason_of(store, first_token) == "revoked"
    assert store.verify(second_token, now=NOW).subject == "key:second"
    store.revoke(store.list()[1].key_id, now=NOW + 6)
    assert reason_of(store, second_token) == "revoked"
    assert store.revoke(first.key_id, now=NOW + 99).revoked_at == NOW + 5  # idempotent


def test_revoking_an_unknown_key_raises_lookup_error(store: KeyStore) -> None:
    with pytest.raises(LookupError, match="codequal keys list"):
        store.revoke("nobody")


def test_a_duplicate_name_is_a_clear_error(store: KeyStore) -> None:
    store.create("ci", ["monitoring:read"], now=NOW)
    with pytest.raises(ValueError, match="named 'ci' already exists"):
        store.create("ci", ["ingest:write"], now=NOW)


@pytest.mark.parametrize(
    ("name", "scopes", "kind", "message"),
    [
        ("ci", ["root"], "service", "valid scopes are"),
        ("ci", [], "service", "at least one scope"),
        ("", ["monitoring:read"], "service", "1 to 200 characters"),
        ("ci", ["monitoring:read"], "robot", "valid kinds are service, sentry"),
    ],
    ids=["unknown-scope", "no-scope", "no-name", "unknown-kind"],
)
def test_invalid_keys_are_refused_before_anything_is_stored(
    store: KeyStore, name: str, scopes: list[str], kind: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.create(name, scopes, kind=kind)
    assert store.list() == []


def test_list_returns_records_without_secrets_oldest_first(store: KeyStore) -> None:
    store.create("b", ["monitoring:read"], now=NOW + 1)
    store.create("a", ["ingest:write"], kind="sentry", project_id=7, now=NOW)
    listed = store.list()
    assert [k.name for k in listed] == ["a", "b"]
    assert (listed[0].kind, listed[0].project_id) == ("sentry", 7)
    assert not hasattr(listed[0], "secret_hash")


# -- codequal keys ----------------------------------------------------------------------------
def run(database_url: str, tmp_path: Path, *args: str) -> Result:
    env = {"CODEQUAL_DATABASE_URL": database_url}
    command = [args[0], "--data-dir", str(tmp_path), *args[1:]]
    return CliRunner().invoke(keys, command, env=env)


def test_keys_cli_creates_lists_and_revokes(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    created = run(
        database_url, tmp_path, "create", "--name", "ci", "--scope", "analyses:write,ingest:write"
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.splitlines()[-1]
    principal = KeyStore(database).verify(token)
    assert principal.scopes == {"analyses:write", "ingest:write"}

    listed = run(database_url, tmp_path, "list")
    assert listed.exit_code == 0, listed.output
    assert "ci" in listed.stdout and "analyses:write ingest:write" in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout
    as_json = orjson.loads(run(database_url, tmp_path, "list", "--json").stdout)
    assert as_json[0]["name"] == "ci" and as_json[0]["last used"] != "-"

    revoked = run(database_url, tmp_path, "revoke", "ci")
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(AuthError, match="revoked"):
        KeyStore(database).verify(token)


def test_keys_cli_rejects_unknown_scopes_duplicates_and_unknown_keys_with_exit_2(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    bad_scope = run(database_url, tmp_path, "create", "--name", "ci", "--scope", "everything")
    assert bad_scope.exit_code == 2
    assert "valid scopes are monitoring:read" in bad_scope.output
    first = run(database_url, tmp_path, "create", "--name", "ci", "--scope", "ingest:write")
    assert first.exit_code == 0, first.output
    duplicate = run(database_url, tmp_path, "create", "--name", "ci", "--scope", "ingest:write")
    assert duplicate.exit_code == 2
    assert "already exists" in duplicate.output
    missing = run(database_url, tmp_path, "revoke", "nobody")
    assert missing.exit_code == 2
    assert "no service key is named 'nobody'" in missing.output
