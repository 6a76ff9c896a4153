"""JWT verification: the algorithm is fixed by configuration and every attack case is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from codequal.cli.token_cmd import parse_ttl, token
from codequal.config import Settings, load_settings
from codequal.exceptions import ConfigError
from codequal.security import (
    ALL_SCOPES,
    AuthError,
    Principal,
    TokenVerifier,
    load_or_create_secret,
    mint_token,
    parse_scopes,
)

SECRET = "s" * 48
NOW = 1_800_000_000.0

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_pem(tmp_path: Path, key: PrivateKey) -> Path:
    path = tmp_path / "public.pem"
    path.write_bytes(pem(key))
    return path


def write_jwks(tmp_path: Path, keys: dict[str, PrivateKey]) -> Path:
    entries = []
    for kid, key in keys.items():
        algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
        entry = algorithm.to_jwk(key.public_key(), as_dict=True)
        entries.append({**entry, "kid": kid, "use": "sig"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": entries}))
    return path


def settings(tmp_path: Path, **values: Any) -> Settings:
    return load_settings(data_dir=tmp_path, **values)


def hs_verifier(tmp_path: Path, **values: Any) -> TokenVerifier:
    return TokenVerifier.from_settings(settings(tmp_path, jwt_secret=SECRET, **values))


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "scope": "monitoring:read", "exp": NOW + 3600, **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def reason_of(verifier: TokenVerifier, token: str, now: float = NOW) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token, now=now)
    assert caught.value.message  # every rejection says why, in one line
    assert "\n" not in caught.value.message
    return caught.value.reason


# -- HS256 ------------------------------------------------------------------------------------
def test_minted_token_verifies_with_subject_and_space_separated_scopes(tmp_path: Path) -> None:
    token_ = mint_token(SECRET, "alice", ["monitoring:read", "ingest:write"], 60, now=NOW)
    assert jwt.decode(token_, options={"verify_signature": False})["scope"] == (
        "ingest:write monitoring:read"
    )
    principal = hs_verifier(tmp_path).verify(token_, now=NOW)
    assert principal == Principal(
        subject="alice", scopes=frozenset({"monitoring:read", "ingest:write"}), via="jwt"
    )
    assert principal.has("ingest:write")
    assert not principal.has("monitoring:admin")


def test_alg_none_token_is_rejected_before_any_signature_check(tmp_path: Path) -> None:
    unsigned = f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(claims())}."
    assert reason_of(hs_verifier(tmp_path), unsigned) == "algorithm"


@pytest.mark.parametrize("alg", ["None", "NONE", "HS384", "HS512", "RS256"])
def test_any_algorithm_other_than_the_configured_one_is_rejected(tmp_path: Path, alg: str) -> None:
    forged = f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(claims())}.c2ln"
    assert reason_of(hs_verifier(tmp_path), forged) == "algorithm"


def test_tampered_payload_fails_the_signature_check(tmp_path: Path) -> None:
    header, _, signature = mint_token(SECRET, "alice", ["monitoring:read"], 60, now=NOW).split(".")
    escalated = b64json(claims(scope="monitoring:read monitoring:admin"))
    assert reason_of(hs_verifier(tmp_path), f"{header}.{escalated}.{signature}") == "signature"


def test_token_signed_with_another_secret_fails_the_signature_check(tmp_path: Path) -> None:
    forged = mint_token("x" * 48, "alice", ["monitoring:read"], 60, now=NOW)
    assert reason_of(hs_verifier(tmp_path), forged) == "signature"


def test_expiry_allows_30_seconds_of_clock_skew_and_no_more(tmp_path: Path) -> None:
    verifier = hs_verifier(tmp_path)
    token_ = mint_token(SECRET, "alice", ["monitoring:read"], 60, now=NOW)
    assert verifier.verify(token_, now=NOW + 60 + 29).subject == "alice"
    assert reason_of(verifier, token_, now=NOW + 60 + 30) == "expired"
    assert reason_of(verifier, token_, now=NOW + 86_400) == "expired"


def test_not_before_is_honoured_with_30_seconds_of_leeway(tmp_path: Path) -> None:
    verifier = hs_verifier(tmp_path)
    token_ = jwt.encode(claims(nbf=NOW + 100), SECRET, algorithm="HS256")
    assert reason_of(verifier, token_, now=NOW + 69) == "not_yet_valid"
    assert verifier.verify(token_, now=NOW + 71).subject == "alice"


def test_a_token_without_exp_is_rejected(tmp_path: Path) -> None:
    no_exp = {"sub": "alice", "scope": "monitoring:read"}
    token_ = jwt.encode(no_exp, SECRET, algorithm="HS256")
    assert reason_of(hs_verifier(tmp_path), token_) == "missing_claim"


def test_a_token_without_sub_is_rejected(tmp_path: Path) -> None:
    token_ = jwt.encode({"scope": "monitoring:read", "exp": NOW + 60}, SECRET, algorithm="HS256")
    assert reason_of(hs_verifier(tmp_path), token_) == "missing_claim"


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": "tomorrow"},
        {"exp": True},
        {"exp": 10**400},
        {"nbf": "now"},
        {"scope": ["monitoring:read"]},
        {"sub": 42},
    ],
    ids=["exp-string", "exp-bool", "exp-huge", "nbf-string", "scope-list", "sub-number"],
)
def test_claims_of_the_wrong_type_are_malformed(tmp_path: Path, bad: dict[str, Any]) -> None:
    token_ = jwt.encode(claims(**bad), SECRET, algorithm="HS256")
    assert reason_of(hs_verifier(tmp_path), token_) == "malformed"


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b", "a.b.c", "a.b.c.d", "x" * 9000 + ".a.b", "eyJhbGciOiJIUzI1NiJ9.!!!.x"],
    ids=["empty", "word", "two-parts", "junk", "four-parts", "huge", "bad-payload"],
)
def test_garbage_is_malformed_not_an_exception(tmp_path: Path, garbage: str) -> None:
    assert reason_of(hs_verifier(tmp_path), garbage) == "malformed"


def test_issuer_is_checked_when_configured(tmp_path: Path) -> None:
    verifier = hs_verifier(tmp_path, jwt_issuer="https://issuer.example")
    good = mint_token(
        SECRET, "a", ["monitoring:read"], 60, issuer="https://issuer.example", now=NOW
    )
    wrong = mint_token(SECRET, "a", ["monitoring:read"], 60, issuer="https://evil.example", now=NOW)
    missing = mint_token(SECRET, "a", ["monitoring:read"], 60, now=NOW)
    assert verifier.verify(good, now=NOW).subject == "a"
    assert reason_of(verifier, wrong) == "issuer"
    assert reason_of(verifier, missing) == "issuer"


def test_audience_is_checked_when_configured(tmp_path: Path) -> None:
    verifier = hs_verifier(tmp_path, jwt_audience="codequal")
    good = mint_token(SECRET, "a", ["monitoring:read"], 60, audience="codequal", now=NOW)
    wrong = mint_token(SECRET, "a", ["monitoring:read"], 60, audience="billing", now=NOW)
    missing = mint_token(SECRET, "a", ["monitoring:read"], 60, now=NOW)
    assert verifier.verify(good, now=NOW).subject == "a"
    assert reason_of(verifier, wrong) == "audience"
    assert reason_of(verifier, missing) == "audience"


def test_unknown_scopes_in_a_token_grant_nothing_extra(tmp_path: Path) -> None:
    token_ = jwt.encode(claims(scope="root everything"), SECRET, algorithm="HS256")
    principal = hs_verifier(tmp_path).verify(token_, now=NOW)
    assert not any(principal.has(scope) for scope in ALL_SCOPES)


# -- RS256 / ES256 ----------------------------------------------------------------------------
def test_rs256_token_verifies_with_the_configured_public_key(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier.from_settings(
        settings(tmp_path, jwt_public_key=write_pem(tmp_path, rsa_key))
    )
    assert verifier.algorithm == "RS256"
    assert verifier.verify(jwt.encode(claims(), rsa_key, algorithm="RS256"), now=NOW).subject


def test_hs256_token_signed_with_the_rs256_public_key_is_rejected(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The classic key-confusion attack: the public key (which anyone has) as an HMAC secret.
    verifier = TokenVerifier.from_settings(
        settings(tmp_path, jwt_public_key=write_pem(tmp_path, rsa_key))
    )
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT'})}.{b64json(claims())}"
    mac = hmac.new(pem(rsa_key), signing_input.encode(), hashlib.sha256).digest()
    assert reason_of(verifier, f"{signing_input}.{b64(mac)}") == "algorithm"


def test_rs256_token_from_another_key_fails_the_signature_check(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier.from_settings(
        settings(tmp_path, jwt_public_key=write_pem(tmp_path, rsa_key))
    )
    forged = jwt.encode(claims(), other_rsa_key, algorithm="RS256")
    assert reason_of(verifier, forged) == "signature"


def test_es256_is_inferred_from_a_p256_key_and_rs256_tokens_are_refused(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier.from_settings(
        settings(tmp_path, jwt_public_key=write_pem(tmp_path, ec_key))
    )
    assert verifier.algorithm == "ES256"
    assert verifier.verify(jwt.encode(claims(), ec_key, algorithm="ES256"), now=NOW).subject
    assert reason_of(verifier, jwt.encode(claims(), rsa_key, algorithm="RS256")) == "algorithm"


def test_jwks_key_is_chosen_by_kid(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks = write_jwks(tmp_path, {"2025": rsa_key, "2026": other_rsa_key})
    verifier = TokenVerifier.from_settings(settings(tmp_path, jwt_jwks=jwks))
    new = jwt.encode(claims(), other_rsa_key, algorithm="RS256", headers={"kid": "2026"})
    old = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "2025"})
    assert verifier.verify(new, now=NOW).subject == "alice"
    assert verifier.verify(old, now=NOW).subject == "alice"
    mislabelled = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "2026"})
    assert reason_of(verifier, mislabelled) == "signature"
    unknown = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "2024"})
    assert reason_of(verifier, unknown) == "unknown_key"
    assert reason_of(verifier, jwt.encode(claims(), rsa_key, algorithm="RS256")) == "unknown_key"


def test_jwks_with_es256_keys_verifies_es256_tokens(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = TokenVerifier.from_settings(
        settings(tmp_path, jwt_jwks=write_jwks(tmp_path, {"ec-1": ec_key}))
    )
    token_ = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert verifier.algorithm == "ES256"
    assert verifier.verify(token_, now=NOW).subject == "alice"


def test_mixed_jwks_needs_the_algorithm_chosen_and_then_uses_only_those_keys(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks = write_jwks(tmp_path, {"rsa": rsa_key, "ec": ec_key})
    with pytest.raises(ConfigError, match="CODEQUAL_JWT_ALGORITHM"):
        TokenVerifier.from_settings(settings(tmp_path, jwt_jwks=jwks))
    verifier = TokenVerifier.from_settings(settings(tmp_path, jwt_jwks=jwks, jwt_algorithm="ES256"))
    rs = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa"})
    assert reason_of(verifier, rs) == "algorithm"


# -- configuration errors stop the server with the variable's name ------------------------------
def test_short_secret_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"CODEQUAL_JWT_SECRET .* at least 32"):
        TokenVerifier.from_settings(settings(tmp_path, jwt_secret="short"))
    with pytest.raises(ConfigError):
        mint_token("short", "a", ["monitoring:read"], 60)


def test_secret_and_public_key_together_are_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    both = settings(tmp_path, jwt_secret=SECRET, jwt_public_key=write_pem(tmp_path, rsa_key))
    with pytest.raises(ConfigError, match="not both"):
        TokenVerifier.from_settings(both)


def test_algorithm_that_disagrees_with_the_key_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    mismatch = settings(
        tmp_path, jwt_public_key=write_pem(tmp_path, rsa_key), jwt_algorithm="ES256"
    )
    with pytest.raises(ConfigError, match="CODEQUAL_JWT_ALGORITHM is ES256"):
        TokenVerifier.from_settings(mismatch)
    with pytest.raises(ConfigError, match="needs CODEQUAL_JWT_PUBLIC_KEY"):
        TokenVerifier.from_settings(settings(tmp_path, jwt_algorithm="RS256"), SECRET)


def test_unusable_key_files_are_refused_with_the_variable_named(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match=r"CODEQUAL_JWT_PUBLIC_KEY .* not a PEM public key"):
        TokenVerifier.from_settings(settings(tmp_path, jwt_public_key=garbage))
    with pytest.raises(ConfigError, match=r"CODEQUAL_JWT_PUBLIC_KEY .* cannot be read"):
        TokenVerifier.from_settings(settings(tmp_path, jwt_public_key=tmp_path / "missing.pem"))
    private = RSAAlgorithm.to_jwk(rsa_key, as_dict=True)
    leaky = tmp_path / "leaky.json"
    leaky.write_text(json.dumps({"keys": [private]}))
    with pytest.raises(ConfigError, match="private key"):
        TokenVerifier.from_settings(settings(tmp_path, jwt_jwks=leaky))


def test_weak_rsa_keys_are_refused(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - on purpose
    with pytest.raises(ConfigError, match="too weak"):
        TokenVerifier.from_settings(settings(tmp_path, jwt_public_key=write_pem(tmp_path, weak)))


def test_parse_scopes_accepts_lists_and_names_the_valid_ones_on_error() -> None:
    assert parse_scopes(["monitoring:read,ingest:write", "analyses:write"]) == {
        "monitoring:read",
        "ingest:write",
        "analyses:write",
    }
    with pytest.raises(ValueError, match=r"unknown scope admin: valid scopes are monitoring:read"):
        parse_scopes("admin monitoring:read")


# -- codequal token create --------------------------------------------------------------------
def run_token(tmp_path: Path, *args: str, **env: str | None) -> Any:
    environment: dict[str, str | None] = {
        "CODEQUAL_JWT_SECRET": None,
        "CODEQUAL_JWT_PUBLIC_KEY": None,
        "CODEQUAL_JWT_JWKS": None,
        **env,
    }
    return CliRunner().invoke(
        token, ["create", "--data-dir", str(tmp_path), *args], env=environment
    )


def test_token_create_prints_only_a_token_the_server_accepts(tmp_path: Path) -> None:
    result = run_token(tmp_path, "--scope", "monitoring:read", "--ttl", "1h", "--subject", "ci")
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip()
    assert result.stdout == printed + "\n"  # one line, nothing else, for $(...)
    secret_file = tmp_path / "jwt-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    server = TokenVerifier.from_settings(settings(tmp_path), load_or_create_secret(tmp_path))
    principal = server.verify(printed)
    assert principal.subject == "ci"
    assert principal.scopes == {"monitoring:read"}
    lifetime = jwt.decode(printed, options={"verify_signature": False})
    assert lifetime["exp"] - lifetime["iat"] == 3600


def test_token_create_uses_the_configured_secret_and_issuer(tmp_path: Path) -> None:
    result = run_token(
        tmp_path,
        "--scope",
        "monitoring:read monitoring:admin",
        CODEQUAL_JWT_SECRET=SECRET,
        CODEQUAL_JWT_ISSUER="codequal-test",
    )
    assert result.exit_code == 0, result.output
    verifier = hs_verifier(tmp_path, jwt_issuer="codequal-test")
    assert verifier.verify(result.stdout.strip()).scopes == {
        "monitoring:read",
        "monitoring:admin",
    }
    assert not (tmp_path / "jwt-secret").exists()


def test_token_create_with_an_unknown_scope_exits_2_listing_the_valid_ones(
    tmp_path: Path,
) -> None:
    result = run_token(tmp_path, "--scope", "monitoring:write")
    assert result.exit_code == 2
    assert "valid scopes are monitoring:read, monitoring:admin" in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("ttl", ["soon", "0s", "-5m", "400d", "1w"])
def test_token_create_with_a_bad_ttl_exits_2(tmp_path: Path, ttl: str) -> None:
    result = run_token(tmp_path, "--scope", "monitoring:read", "--ttl", ttl)
    assert result.exit_code == 2, result.output
    assert "--ttl" in result.output


def test_token_create_refuses_when_tokens_come_from_an_external_issuer(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    public = str(write_pem(tmp_path, rsa_key))
    result = run_token(tmp_path, "--scope", "monitoring:read", CODEQUAL_JWT_PUBLIC_KEY=public)
    assert result.exit_code == 2
    assert "tokens must come from the issuer" in result.output
    assert result.stdout == ""


def test_ttl_accepts_seconds_minutes_hours_and_days() -> None:
    assert [parse_ttl(t) for t in ("90", "90s", "15m", "1h", "7d", "1.5h")] == [
        90,
        90,
        900,
        3600,
        604_800,
        5400,
    ]
