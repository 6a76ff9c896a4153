"""Secrets never reach the store, the log or Sentry: scrubbing by key and by value shape."""

from __future__ import annotations

import json
import random

import pytest

from codequal.telemetry.context import bind
from codequal.telemetry.errors import FILTERED, build_event, is_sensitive_key, scrub, scrub_text
from codequal.telemetry.scrub import _SECRET_VALUES

AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "PASSWD",
        "client_secret",
        "token",
        "access_token",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "Authorization",
        "Cookie",
        "Set-Cookie",
        "session",
        "sessionid",
        "private_key",
        "credentials",
        "sentry_dsn",
    ],
)
def test_values_under_sensitive_keys_are_filtered_whatever_they_look_like(key: str) -> None:
    assert scrub({key: "plain-looking-value", "user": "ada"}) == {key: FILTERED, "user": "ada"}
    assert scrub({key: {"nested": 1}}) == {key: FILTERED}


@pytest.mark.parametrize("key", ["max_tokens", "prompt_tokens", "token_count", "author", "keys"])
def test_ordinary_keys_that_resemble_secret_names_are_kept(key: str) -> None:
    assert not is_sensitive_key(key)
    assert scrub({key: 4096}) == {key: 4096}


def test_nested_structures_are_scrubbed_keeping_their_shape_without_mutating_input() -> None:
    data = {
        "request": {"headers": [("Authorization", "x"), {"cookie": "sid=1"}], "path": "/a"},
        "attempts": (1, {"password": "p"}),
        "token": None,
    }
    original = json.dumps(data, sort_keys=True)

    result = scrub(data)

    assert result == {
        "request": {"headers": [("Authorization", "x"), {"cookie": FILTERED}], "path": "/a"},
        "attempts": (1, {"password": FILTERED}),
        "token": None,
    }
    assert json.dumps(data, sort_keys=True) == original


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("header was Bearer abc.DEF-123_~+/xyz== for the call", "abc.DEF-123_~+/xyz=="),
        (f"jwt {JWT} rejected", JWT),
        (f"loaded key\n{PEM}\nok", "MIIEowIBAAKCAQEA7"),
        (f"truncated key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN{'A' * 40}", "MIIEvQIBADAN"),
        (f"id {AWS_KEY_ID} denied", AWS_KEY_ID),
        (f"aws_secret_access_key={AWS_SECRET}", AWS_SECRET),
        (f'"aws_secret_access_key": "{AWS_SECRET}"', AWS_SECRET),
        ("could not connect to postgresql://app:s3cr3t@db:5432/cq", "s3cr3t"),
        ("redis://:hunter2@cache:6379/0 refused", "hunter2"),
        ("login failed with password=hunter2 for ada", "hunter2"),
        ('payload {"api_key": "k-123456"} rejected', "k-123456"),
        ("?client_secret=xyz789&scope=repo", "xyz789"),
        ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l"),
    ],
)
def test_secrets_recognised_by_shape_are_filtered_inside_any_text(text: str, secret: str) -> None:
    scrubbed = scrub_text(text)
    assert secret not in scrubbed
    assert FILTERED in scrubbed
    assert scrub({"message": text, "list": [text]}) == {"message": scrubbed, "list": [scrubbed]}


def test_url_password_is_filtered_but_user_host_and_path_are_kept() -> None:
    assert (
        scrub_text("GET https://ada:pa55@git.example.com/org/repo.git failed")
        == f"GET https://ada:{FILTERED}@git.example.com/org/repo.git failed"
    )


@pytest.mark.parametrize(
    "text",
    [
        "analysis 42 of https://github.com/org/repo took 1.5 s",
        "used 1200 tokens; max_tokens=4096",
        "KeyError: 'repository_url'",
        "the bearer of bad news",
        "ratio 3:4 at 12:30",
    ],
)
def test_ordinary_text_is_left_unchanged(text: str) -> None:
    assert scrub_text(text) == text


def _every_pattern(text: str) -> str:
    for pattern, replacement in _SECRET_VALUES:
        text = pattern.sub(replacement, text)
    return text


_FRAGMENTS = (
    "Bearer abc.DEF-123", "bearer 12345678", "BEARER x1y2z3w4v5", JWT, PEM, AWS_KEY_ID,
    "ASIA" + "A" * 16, f"AWS_Secret_Key={AWS_SECRET}", "https://u:p4ss@h/x", "s3://b:k@x",
    "PassWord=hunter2", "pwd: x", "ToKeN='abc'", "apiKey=1", "API_KEY: 2", "AccessKey=3",
    "access_key=4", "AUTHORIZATION: Basic Zm9v", "client_secret=5", "order 17 failed",
    "result = step(request, order_id)", "ratio 3:4", " ", "\n", "\u017fecret=6", "to\u212aen=7",
    "паспорт", "é", "=", ":", "@", "/",
)  # fmt: skip


def test_text_without_a_secret_word_is_returned_as_the_patterns_would_return_it() -> None:
    # scrub_text skips its patterns when no pattern can match: that shortcut must never change
    # what it returns, for any mix of secrets, near misses, case and non-ASCII letters.
    rng = random.Random(11)  # noqa: S311 - a repeatable mix, not a secret
    texts = ["".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 6))) for _ in range(3000)]
    texts += [f.upper() for f in _FRAGMENTS] + [f.lower() for f in _FRAGMENTS]
    for text in texts:
        assert scrub_text(text) == _every_pattern(text), text


def test_scrubbing_twice_gives_the_same_result() -> None:
    text = f"Bearer abc postgresql://u:p@h/db password=x {JWT} {AWS_KEY_ID}"
    once = scrub_text(text)
    assert scrub_text(once) == once


def test_deep_or_cyclic_structures_are_cut_instead_of_hanging() -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    result = scrub(cyclic)
    depth = 0
    while isinstance(result, dict):
        result, depth = result["self"], depth + 1
    assert result == "[Truncated]"
    assert depth < 50


@pytest.mark.timeout(10)
@pytest.mark.parametrize("unit", ["a.", "a-", "a/", "a:", "ab+", "password", "Bearer "])
def test_long_adversarial_text_is_scrubbed_in_linear_time(unit: str) -> None:
    # A quadratic pattern would take minutes here and stall the thread that captured an error.
    text = unit * 20_000
    assert len(scrub_text(text)) > 0


def _connect(dsn: str, api_token: str) -> None:
    raise ConnectionError(f"cannot reach {dsn} with Bearer {api_token}")


def test_built_event_has_secrets_removed_from_message_stack_context_and_fields() -> None:
    dsn = "postgresql://app:" + "topsecret1" + "@db/cq"
    token = "tok" + "en-value-2"
    try:
        _connect(dsn, token)
    except ConnectionError as exc:
        with bind(repository_url="https://bot:" + "ghp_secret3" + "@github.com/org/repo"):
            event = build_event(
                exc,
                {"password": "pw-4", "request": {"headers": {"X-Api-Key": "k-5"}}},
                service="api",
                environment="test",
            )

    stored = json.dumps(event.to_dict())
    for secret in ("topsecret1", "en-value-2", "ghp_secret3", "pw-4", "k-5"):
        assert secret not in stored
    assert event.repository_url == f"https://bot:{FILTERED}@github.com/org/repo"
    assert event.context == {"password": FILTERED, "request": {"headers": {"X-Api-Key": FILTERED}}}
    assert "ConnectionError" in event.stack
