"""Service keys for machine clients: shown once, stored only as a SHA-256 hash, revocable.

A client presents ``cq_<key_id>_<secret>`` as a bearer token. ``key_id`` finds the row; the
hash of ``secret`` is compared in constant time. The secret is 256 random bits, so a plain
SHA-256 is enough: there is nothing to brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from codequal.exceptions import AuthError
from codequal.security.tokens import Principal, parse_scopes
from codequal.storage.db import Database
from codequal.storage.schema import service_keys

KEY_PREFIX = "cq_"
KINDS = ("service", "sentry")
KEY_ID_HEX = 16
MAX_KEY_LENGTH = 256
MAX_NAME_LENGTH = 200
# A busy CI client must not turn every request into a write: last_used_at is refreshed at
# most this often per key, which is plenty for "when was this key last used?".
LAST_USED_INTERVAL = 5.0


@dataclass(frozen=True)
class ServiceKey:
    """A stored key, without its secret (which is never stored)."""

    key_id: str
    name: str
    scopes: frozenset[str]
    kind: str
    project_id: int | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(m: Mapping[Any, Any]) -> ServiceKey:
    return ServiceKey(
        key_id=m["key_id"],
        name=m["name"],
        scopes=frozenset(m["scopes"].split()),
        kind=m["kind"],
        project_id=m["project_id"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


def _split(token: str) -> tuple[str, str]:
    key_id, sep, secret = token[len(KEY_PREFIX) :].partition("_")
    well_formed = (
        token.startswith(KEY_PREFIX)
        and len(token) <= MAX_KEY_LENGTH
        and sep == "_"
        and len(key_id) == KEY_ID_HEX
        and all(c in "0123456789abcdef" for c in key_id)
        and secret != ""
    )
    if not well_formed:
        raise AuthError("malformed", "the service key is not of the form cq_<id>_<secret>")
    return key_id, secret


class KeyStore:
    """Create, verify, revoke and list service keys."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        name: str,
        scopes: Iterable[str],
        kind: str = "service",
        project_id: int | None = None,
        now: float | None = None,
    ) -> tuple[ServiceKey, str]:
        """Store a new key; return its record and the token, which is not retrievable later."""
        row = _new_row(name, scopes, kind, project_id, time.time() if now is None else now)
        secret = secrets.token_urlsafe(32)
        row["secret_hash"] = _hash(secret)
        try:
            with self._db.engine.begin() as conn:
                conn.execute(service_keys.insert().values(**row))
        except sa.exc.IntegrityError:
            raise ValueError(
                f"a service key named {row['name']!r} already exists (revoked keys keep their "
                "name); choose another name."
            ) from None
        return _record(row), f"{KEY_PREFIX}{row['key_id']}_{secret}"

    def verify(self, token: str, now: float | None = None) -> Principal:
        """The principal a ``cq_`` token stands for; AuthError when unknown or revoked."""
        key_id, secret = _split(token)
        stmt = sa.select(service_keys).where(service_keys.c.key_id == key_id)
        with self._db.engine.connect() as conn:
            row = conn.execute(stmt).first()
        # One answer for "no such id" and "wrong secret": neither tells a guesser anything.
        if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
            raise AuthError("unknown_key", "the service key is not known")
        if row.revoked_at is not None:
            raise AuthError("revoked", "the service key has been revoked")
        now = time.time() if now is None else now
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_INTERVAL:
            self._touch(key_id, now)
        scopes = frozenset(row.scopes.split())
        return Principal(subject=f"key:{row.name}", scopes=scopes, via="key", key_id=key_id)

    def _touch(self, key_id: str, now: float) -> None:
        c = service_keys.c
        stmt = (
            service_keys.update()
            .where(c.key_id == key_id)
            # Concurrent requests may race here; never move last_used_at backwards.
            .where(sa.or_(c.last_used_at.is_(None), c.last_used_at < now))
            .values(last_used_at=now)
        )
        with self._db.engine.begin() as conn:
            conn.execute(stmt)

    def get(self, name_or_id: str) -> ServiceKey | None:
        """The key with this id, else the key with this name, else None."""
        with self._db.engine.connect() as conn:
            for column in (service_keys.c.key_id, service_keys.c.name):
                row = conn.execute(sa.select(service_keys).where(column == name_or_id)).first()
                if row is not None:
                    return _record(row._mapping)
        return None

    def revoke(self, name_or_id: str, now: float | None = None) -> ServiceKey:
        """Revoke a key by name or id (again is a no-op); LookupError when there is none."""
        key = self.get(name_or_id)
        if key is None:
            raise LookupError(
                f"no service key is named {name_or_id!r} or has that id; see `codequal keys list`."
            )
        stmt = (
            service_keys.update()
            .where(service_keys.c.key_id == key.key_id, service_keys.c.revoked_at.is_(None))
            .values(revoked_at=time.time() if now is None else now)
        )
        with self._db.engine.begin() as conn:
            conn.execute(stmt)
        revoked = self.get(key.key_id)
        assert revoked is not None  # keys are revoked, never deleted
        return revoked

    def list(self) -> builtins.list[ServiceKey]:
        """Every key, oldest first; secrets are not stored, so none can appear here."""
        stmt = sa.select(service_keys).order_by(service_keys.c.created_at, service_keys.c.name)
        with self._db.engine.connect() as conn:
            return [_record(row._mapping) for row in conn.execute(stmt)]


def _new_row(
    name: str, scopes: Iterable[str], kind: str, project_id: int | None, now: float
) -> dict[str, Any]:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a key name must be 1 to {MAX_NAME_LENGTH} characters")
    granted = parse_scopes(scopes)
    if not granted:
        raise ValueError("a service key needs at least one scope")
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}: valid kinds are {', '.join(KINDS)}")
    return {
        "key_id": secrets.token_hex(KEY_ID_HEX // 2),
        "name": name,
        "scopes": " ".join(sorted(granted)),
        "kind": kind,
        "project_id": project_id,
        "created_at": now,
        "last_used_at": None,
        "revoked_at": None,
    }
