"""Verification keys from the settings: an HS256 secret, a PEM public key, or a JWKS file.

Everything here runs once at start; unusable key material raises ConfigError naming the
``CODEQUAL_JWT_*`` variable, so the server stops before it binds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from codequal.exceptions import ConfigError

if TYPE_CHECKING:
    from codequal.config import Settings

# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048

Algorithm: TypeAlias = Literal["HS256", "RS256", "ES256"]
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
VerifyKey: TypeAlias = str | PublicKey


def is_asymmetric(settings: Settings) -> bool:
    """True when tokens are verified with a public key, so only the issuer can mint them."""
    return settings.jwt_public_key is not None or settings.jwt_jwks is not None


def load_keys(
    settings: Settings, secret: str | None
) -> tuple[Algorithm, dict[str | None, VerifyKey]]:
    """The configured algorithm and its keys by kid (None when the kid does not matter)."""
    if settings.jwt_public_key is not None and settings.jwt_jwks is not None:
        raise ConfigError("set CODEQUAL_JWT_PUBLIC_KEY or CODEQUAL_JWT_JWKS, not both.")
    if is_asymmetric(settings) and settings.jwt_secret is not None:
        raise ConfigError(
            "CODEQUAL_JWT_SECRET is set together with a public key: the algorithm is fixed by "
            "configuration, so set either the secret (HS256) or the public key, not both."
        )
    if settings.jwt_public_key is not None:
        return _pem_key(settings.jwt_public_key, settings.jwt_algorithm)
    if settings.jwt_jwks is not None:
        return _jwks_keys(settings.jwt_jwks, settings.jwt_algorithm)
    if settings.jwt_algorithm not in (None, "HS256"):
        raise ConfigError(
            f"CODEQUAL_JWT_ALGORITHM is {settings.jwt_algorithm}, which needs "
            "CODEQUAL_JWT_PUBLIC_KEY or CODEQUAL_JWT_JWKS."
        )
    origin = "the given JWT secret (from the data dir's jwt-secret file)"
    if settings.jwt_secret is not None:
        secret, origin = settings.jwt_secret.get_secret_value(), "CODEQUAL_JWT_SECRET"
    if secret is None:
        raise ConfigError("no JWT secret: set CODEQUAL_JWT_SECRET or let the server generate one.")
    check_secret(secret, origin)
    return "HS256", {None: secret}


def check_secret(secret: str, origin: str) -> None:
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{origin} is {size} bytes; an HS256 secret needs at least {MIN_SECRET_BYTES} "
            "(generate one with `openssl rand -base64 48`)."
        )


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable} {path} cannot be read: {exc.strerror}.") from None


def _algorithm_of(key: object) -> Algorithm | None:
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    return None


def _check_strength(key: object, origin: str) -> Algorithm:
    algorithm = _algorithm_of(key)
    if algorithm is None:
        raise ConfigError(f"{origin}: only RSA (RS256) and P-256 EC (ES256) keys are supported.")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ConfigError(f"{origin}: a {key.key_size}-bit RSA key is too weak; use 2048 or more.")
    return algorithm


def _pem_key(path: Path, wanted: Algorithm | None) -> tuple[Algorithm, dict[str | None, VerifyKey]]:
    origin = f"CODEQUAL_JWT_PUBLIC_KEY {path}"
    try:
        key = serialization.load_pem_public_key(_read(path, "CODEQUAL_JWT_PUBLIC_KEY"))
    except ValueError:
        raise ConfigError(
            f"{origin} is not a PEM public key (-----BEGIN PUBLIC KEY-----)."
        ) from None
    algorithm = _check_strength(key, origin)
    if wanted is not None and wanted != algorithm:
        raise ConfigError(
            f"CODEQUAL_JWT_ALGORITHM is {wanted} but {origin} is a {algorithm} key; "
            "make them agree or leave CODEQUAL_JWT_ALGORITHM unset."
        )
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)  # checked above
    return algorithm, {None: key}


def _jwks_entries(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(_read(path, "CODEQUAL_JWT_JWKS"))
        entries = document["keys"]
    except (ValueError, KeyError, TypeError):
        entries = None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f'CODEQUAL_JWT_JWKS {path} is not a JWKS document ({{"keys": [...]}}).')
    if any("d" in entry for entry in entries):
        raise ConfigError(
            f"CODEQUAL_JWT_JWKS {path} holds a private key; only public keys belong there."
        )
    # Keys marked for encryption, or of a type PyJWT cannot load, are not ours to verify with.
    return [e for e in entries if e.get("use", "sig") == "sig" and e.get("kty") in ("RSA", "EC")]


def _jwks_keys(
    path: Path, wanted: Algorithm | None
) -> tuple[Algorithm, dict[str | None, VerifyKey]]:
    loaded: dict[str | None, tuple[Algorithm, PublicKey]] = {}
    for entry in _jwks_entries(path):
        kid = entry.get("kid")
        origin = f"CODEQUAL_JWT_JWKS {path} key {kid!r}"
        try:
            key = jwt.PyJWK(entry).key
        except jwt.PyJWTError as exc:
            raise ConfigError(f"{origin} cannot be loaded: {exc}.") from None
        algorithm = _algorithm_of(key)
        # An IdP's key set may also hold keys for other algorithms (P-384, PS256): skip them.
        if algorithm is None or entry.get("alg", algorithm) != algorithm:
            continue
        if wanted is not None and algorithm != wanted:
            continue
        if kid in loaded:
            raise ConfigError(f"{origin} appears twice; every kid must be unique.")
        loaded[kid] = (_check_strength(key, origin), key)
    algorithms = {algorithm for algorithm, _ in loaded.values()}
    if not algorithms:
        raise ConfigError(
            f"CODEQUAL_JWT_JWKS {path} holds no usable {wanted or 'RS256 or ES256'} "
            "signing key (RSA, or EC on P-256)."
        )
    if len(algorithms) > 1:
        raise ConfigError(
            f"CODEQUAL_JWT_JWKS {path} holds both RS256 and ES256 keys; "
            "set CODEQUAL_JWT_ALGORITHM to choose one."
        )
    return algorithms.pop(), {kid: key for kid, (_, key) in loaded.items()}
