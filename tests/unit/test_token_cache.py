"""A token presented again skips the signature check, and loses none of the other checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest

from codequal.config import load_settings
from codequal.security import AuthError, TokenVerifier, mint_token
from codequal.security import tokens as tokens_module

SECRET = "s" * 48
NOW = 1_800_000_000.0


@pytest.fixture
def verifier(tmp_path: Path) -> TokenVerifier:
    return TokenVerifier.from_settings(load_settings(data_dir=tmp_path, jwt_secret=SECRET))


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature is checked (PyJWT's decode), in order."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(tokens_module.jwt, "decode", counting)
    return seen


def reason_of(verifier: TokenVerifier, token: str, now: float) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token, now=now)
    return caught.value.reason


def test_a_repeated_token_has_its_signature_checked_once(
    verifier: TokenVerifier, decodes: list[str]
) -> None:
    token = mint_token(SECRET, "dash", ["monitoring:read"], 3600, now=NOW)
    for step in range(5):
        principal = verifier.verify(token, now=NOW + step)
        assert (principal.subject, principal.scopes) == ("dash", frozenset({"monitoring:read"}))
    assert decodes == [token]


def test_a_remembered_token_still_expires(verifier: TokenVerifier) -> None:
    token = mint_token(SECRET, "dash", ["monitoring:read"], 60, now=NOW)
    assert verifier.verify(token, now=NOW).subject == "dash"
    assert reason_of(verifier, token, now=NOW + 60 + 30) == "expired"


def test_a_remembered_token_is_refused_before_its_not_before_time(
    verifier: TokenVerifier,
) -> None:
    claims = {"sub": "dash", "scope": "monitoring:read", "exp": NOW + 3600, "nbf": NOW + 100}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert verifier.verify(token, now=NOW + 100).subject == "dash"
    # A clock that steps back (NTP) must not let the token in early because it was seen.
    assert reason_of(verifier, token, now=NOW) == "not_yet_valid"


def test_a_token_that_differs_by_one_character_is_checked_in_full(
    verifier: TokenVerifier, decodes: list[str]
) -> None:
    token = mint_token(SECRET, "dash", ["monitoring:read"], 3600, now=NOW)
    verifier.verify(token, now=NOW)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    assert reason_of(verifier, forged, now=NOW) == "signature"
    assert decodes == [token, forged]


def test_rejected_tokens_are_not_remembered(verifier: TokenVerifier, decodes: list[str]) -> None:
    wrong = jwt.encode({"sub": "x", "exp": NOW + 60}, "w" * 48, algorithm="HS256")
    for _ in range(3):
        assert reason_of(verifier, wrong, now=NOW) == "signature"
    assert decodes == [wrong] * 3


def test_the_memory_is_bounded_and_a_forgotten_token_verifies_again(
    verifier: TokenVerifier, decodes: list[str]
) -> None:
    size = tokens_module.VERIFIED_CACHE_SIZE
    tokens = [
        mint_token(SECRET, f"u{i}", ["monitoring:read"], 3600, now=NOW) for i in range(size + 1)
    ]
    for token in tokens:
        verifier.verify(token, now=NOW)
    assert len(verifier._verified) == size  # the oldest went first
    assert verifier.verify(tokens[0], now=NOW).subject == "u0"
    assert decodes[-1] == tokens[0]  # checked in full again
