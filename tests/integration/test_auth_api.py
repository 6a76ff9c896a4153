"""Authentication over HTTP: 401 reasons, 403 scopes, 429 limits, metrics, logs, OpenAPI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from codequal.api.auth import (
    AUTH_RESPONSES,
    Authenticator,
    build_authenticator,
)
from codequal.api.errors import install_error_handlers
from codequal.config import Settings, load_settings
from codequal.security import (
    REASONS,
    SECRET_FILE,
    Principal,
    TokenVerifier,
    load_or_create_secret,
    mint_token,
)
from codequal.security.failures import FailureLimiter
from codequal.security.key_store import KeyStore
from codequal.storage import Database, open_database
from codequal.telemetry.metrics import REGISTRY

SECRET = "test-secret-" + "x" * 40
METRICS_TOKEN = "scrape-me-" + "y" * 30
LIMIT = 3


class Clock:
    """The time the authenticator sees; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("codequal_auth_failures_total", {"reason": reason}) or 0.0


def make_app(settings: Settings, auth: Authenticator) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    auth.install(app)

    reader = Depends(auth.require("monitoring:read"))
    administrator = Depends(auth.require("monitoring:admin"))

    @app.get("/read", responses=AUTH_RESPONSES)
    def read(principal: Principal = reader) -> dict[str, Any]:
        return {"subject": principal.subject, "via": principal.via}

    @app.get("/admin", responses=AUTH_RESPONSES)
    def admin(principal: Principal = administrator) -> str:
        return principal.subject

    @app.get("/metrics", dependencies=[Depends(auth.metrics_guard)])
    def metrics() -> str:
        return "codequal_up 1"

    @app.get("/live")
    def live() -> str:
        return "alive"

    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path,
        jwt_secret=SECRET,
        jwt_issuer="codequal",
        metrics_token=METRICS_TOKEN,
        auth_failures_per_minute=LIMIT,
    )


@pytest.fixture
def store(database: Database) -> KeyStore:
    return KeyStore(database)


@pytest.fixture
def client(settings: Settings, store: KeyStore, clock: Clock) -> Iterator[TestClient]:
    auth = Authenticator(settings, TokenVerifier.from_settings(settings), store, clock=clock)
    with TestClient(make_app(settings, auth)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mint(clock: Clock, *scopes: str, **options: Any) -> str:
    options.setdefault("issuer", "codequal")
    return mint_token(
        SECRET, "alice", scopes or ("monitoring:read",), 300, now=clock.now, **options
    )


def b64json(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def assert_401(response: httpx.Response, reason: str, before: float) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "unauthorised"
    assert isinstance(body["detail"], str) and "\n" not in body["detail"]
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="codequal"')
    assert failures(reason) == before + 1


# -- 200, 401, 403 ----------------------------------------------------------------------------
def test_a_valid_jwt_with_the_scope_is_let_through(client: TestClient, clock: Clock) -> None:
    response = client.get("/read", headers=bearer(mint(clock)))
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "alice", "via": "jwt"}


def test_a_service_key_is_accepted_as_a_bearer_token(
    client: TestClient, store: KeyStore, clock: Clock
) -> None:
    _, token = store.create("ci", ["monitoring:read"], now=clock.now)
    response = client.get("/read", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "key:ci", "via": "key"}
    assert store.list()[0].last_used_at == clock.now


def test_no_token_is_401_missing_with_a_bearer_challenge(client: TestClient) -> None:
    before = failures("missing")
    response = client.get("/read")
    assert_401(response, "missing", before)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="codequal"'
    assert "Authorization: Bearer" in response.json()["detail"]


def _attacks(clock: Clock) -> dict[str, tuple[str, str]]:
    """name -> (Authorization header, expected reason)."""
    good = mint(clock)
    header, _, signature = good.split(".")
    escalated = b64json({"sub": "alice", "scope": "monitoring:admin", "exp": clock.now + 300})
    base = {"sub": "alice", "scope": "monitoring:read", "iss": "codequal"}
    return {
        "alg-none": (
            f"Bearer {b64json({'alg': 'none'})}.{b64json({**base, 'exp': clock.now + 60})}.",
            "algorithm",
        ),
        "tampered": (f"Bearer {header}.{escalated}.{signature}", "signature"),
        "other-secret": (
            "Bearer "
            + mint_token(
                "z" * 40, "alice", ["monitoring:read"], 60, issuer="codequal", now=clock.now
            ),
            "signature",
        ),
        "expired": (
            "Bearer " + jwt.encode({**base, "exp": clock.now - 31}, SECRET, algorithm="HS256"),
            "expired",
        ),
        "not-yet-valid": (
            "Bearer "
            + jwt.encode(
                {**base, "exp": clock.now + 900, "nbf": clock.now + 600}, SECRET, algorithm="HS256"
            ),
            "not_yet_valid",
        ),
        "wrong-issuer": ("Bearer " + mint(clock, issuer="someone-else"), "issuer"),
        "garbage": ("Bearer not-a-token", "malformed"),
        "basic-scheme": ("Basic YWxpY2U6cGFzc3dvcmQ=", "malformed"),
        "unknown-key": (f"Bearer cq_{'0' * 16}_guess", "unknown_key"),
    }


@pytest.mark.parametrize(
    "attack",
    [
        "alg-none",
        "tampered",
        "other-secret",
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "garbage",
        "basic-scheme",
        "unknown-key",
    ],
)
def test_each_attack_is_401_with_its_reason_counted(
    client: TestClient, clock: Clock, attack: str
) -> None:
    header, reason = _attacks(clock)[attack]
    before = failures(reason)
    response = client.get("/read", headers={"Authorization": header})
    assert_401(response, reason, before)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_revoked_service_key_is_401_revoked(
    client: TestClient, store: KeyStore, clock: Clock
) -> None:
    _, token = store.create("ci", ["monitoring:read"], now=clock.now)
    store.revoke("ci", now=clock.now)
    before = failures("revoked")
    assert_401(client.get("/read", headers=bearer(token)), "revoked", before)


def test_a_valid_token_without_the_scope_is_403(client: TestClient, clock: Clock) -> None:
    before = failures("scope")
    response = client.get("/admin", headers=bearer(mint(clock, "monitoring:read")))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "needs the monitoring:admin scope" in response.json()["detail"]
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert failures("scope") == before + 1
    granted = client.get("/admin", headers=bearer(mint(clock, "monitoring:admin")))
    assert granted.status_code == 200


def test_an_hs256_token_signed_with_the_public_key_is_401_on_an_rs256_server(
    tmp_path: Path, store: KeyStore, clock: Clock
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    settings = load_settings(data_dir=tmp_path, jwt_public_key=tmp_path / "pub.pem")
    auth = Authenticator(settings, TokenVerifier.from_settings(settings), store, clock=clock)
    claims = {"sub": "mallory", "scope": "monitoring:read", "exp": clock.now + 60}
    # Key confusion: the public key, which anyone has, used as an HMAC secret.
    forged = _hmac_token(claims, pem)
    genuine = jwt.encode(claims, key, algorithm="RS256")
    with TestClient(make_app(settings, auth)) as rs_client:
        before = failures("algorithm")
        assert_401(rs_client.get("/read", headers=bearer(forged)), "algorithm", before)
        assert rs_client.get("/read", headers=bearer(genuine)).status_code == 200


def _hmac_token(claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT'})}.{b64json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_service_keys_are_503_not_500_while_the_database_is_unreachable(
    settings: Settings, clock: Clock
) -> None:
    unreachable = open_database("postgresql+psycopg://nobody@127.0.0.1:9/none")
    auth = Authenticator(
        settings, TokenVerifier.from_settings(settings), KeyStore(unreachable), clock=clock
    )
    try:
        with TestClient(make_app(settings, auth)) as down_client:
            response = down_client.get("/read", headers=bearer(f"cq_{'0' * 16}_secret"))
            assert response.status_code == 503
            assert response.json()["error"] == "service unavailable"
            assert down_client.get("/read", headers=bearer(mint(clock))).status_code == 200
    finally:
        unreachable.dispose()


# -- 429 --------------------------------------------------------------------------------------
def test_a_client_over_the_failure_limit_gets_429_until_its_window_slides(
    client: TestClient, clock: Clock
) -> None:
    for _ in range(LIMIT):
        assert client.get("/read", headers=bearer("wrong")).status_code == 401
        clock.now += 1
    before = failures("rate_limited")
    limited = client.get("/read", headers=bearer("wrong again"))
    assert limited.status_code == 429
    assert limited.json()["error"] == "too many failed authentications"
    # Failures at t, t+1, t+2 and now is t+3: the first leaves the window at t+60.
    assert int(limited.headers["Retry-After"]) == 57
    assert failures("rate_limited") == before + 1
    clock.now += 60
    assert client.get("/read", headers=bearer("wrong")).status_code == 401


def test_a_valid_credential_is_served_from_an_address_that_keeps_failing(
    client: TestClient, clock: Clock
) -> None:
    # Behind a proxy every client shares one address: a guesser must not lock the rest out.
    for _ in range(LIMIT * 3):
        client.get("/read", headers=bearer("guess"))
    assert client.get("/read", headers=bearer("guess")).status_code == 429
    assert client.get("/read", headers=bearer(mint(clock))).status_code == 200


def test_the_limit_is_per_address(client: TestClient, clock: Clock) -> None:
    for _ in range(LIMIT):
        client.get("/read", headers=bearer("wrong"))
    assert client.get("/read", headers=bearer("wrong")).status_code == 429
    other = TestClient(client.app, client=("198.51.100.7", 4000))
    assert other.get("/read", headers=bearer("wrong")).status_code == 401


def test_guessing_one_service_key_from_many_addresses_is_limited_by_key_id(
    client: TestClient, store: KeyStore, clock: Clock
) -> None:
    _, token = store.create("ci", ["monitoring:read"], now=clock.now)
    key_id = token.split("_")[1]
    answers = []
    for i in range(LIMIT + 1):
        guesser = TestClient(client.app, client=(f"198.51.100.{i + 10}", 4000))
        answers.append(guesser.get("/read", headers=bearer(f"cq_{key_id}_guess{i}")).status_code)
    assert answers == [401] * LIMIT + [429]
    assert client.get("/read", headers=bearer(token)).status_code == 200


def test_requests_without_a_token_do_not_use_up_the_limit(client: TestClient, clock: Clock) -> None:
    for _ in range(LIMIT * 3):
        assert client.get("/read").status_code == 401
    assert client.get("/read", headers=bearer(mint(clock))).status_code == 200


def test_the_limiter_forgets_the_oldest_address_when_full() -> None:
    limiter = FailureLimiter(limit=1, window=60, max_clients=2)
    for address in ("a", "b", "c"):
        assert limiter.record(address, now=0)  # each one crosses the limit of 1
    assert limiter.retry_after("a", now=1) is None
    assert limiter.retry_after("c", now=1) == 59


# -- /metrics ---------------------------------------------------------------------------------
def test_metrics_needs_the_metrics_token_when_one_is_set(client: TestClient) -> None:
    missing_before, wrong_before = failures("missing"), failures("metrics_token")
    assert_401(client.get("/metrics"), "missing", missing_before)
    assert_401(client.get("/metrics", headers=bearer("guess")), "metrics_token", wrong_before)
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    assert client.get("/live").status_code == 200


def test_metrics_is_open_when_no_metrics_token_is_set(
    tmp_path: Path, store: KeyStore, clock: Clock
) -> None:
    settings = load_settings(data_dir=tmp_path, jwt_secret=SECRET)
    auth = Authenticator(settings, TokenVerifier.from_settings(settings), store, clock=clock)
    with TestClient(make_app(settings, auth)) as open_client:
        assert open_client.get("/metrics").status_code == 200
        assert open_client.get("/read").status_code == 401


# -- logs, OpenAPI, wiring ------------------------------------------------------------------------
def test_no_token_or_secret_reaches_the_logs(
    client: TestClient, store: KeyStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    _, key_token = store.create("ci", ["monitoring:read"], now=clock.now)
    good = mint(clock)
    expired = jwt.encode(
        {"sub": "a", "iss": "codequal", "exp": clock.now - 99}, SECRET, algorithm="HS256"
    )
    caplog.set_level(logging.DEBUG)
    client.get("/read", headers=bearer(good))
    client.get("/admin", headers=bearer(good))
    client.get("/read", headers=bearer(key_token))
    client.get("/read", headers=bearer(expired))
    client.get("/read", headers=bearer(key_token[:-2] + ("yy" if key_token[-2:] == "zz" else "zz")))
    client.get("/read?access_token=" + good)
    client.get("/metrics", headers=bearer(METRICS_TOKEN + "!"))
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    # httpx is the test's own client, which logs the URLs it requests; the server is under test.
    logged = "\n".join(
        f"{r.name} {r.getMessage()} {r.args}" for r in caplog.records if r.name != "httpx"
    )
    assert "authentication rejected (expired)" in logged
    assert "authentication rejected (unknown_key)" in logged
    for secret in (good, expired, key_token, key_token.split("_", 2)[2], SECRET, METRICS_TOKEN):
        assert secret not in logged
    for part in good.split("."):
        assert part not in logged


def test_openapi_documents_the_bearer_scheme_scopes_and_error_answers(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["type"] == "http"
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    read = spec["paths"]["/read"]["get"]
    assert read["security"] == [{"bearer": ["monitoring:read"]}]
    assert {"401", "403", "429"} <= set(read["responses"])
    assert spec["paths"]["/admin"]["get"]["security"] == [{"bearer": ["monitoring:admin"]}]
    assert "security" not in spec["paths"]["/live"]["get"]


def test_every_counted_reason_is_one_of_the_documented_bounded_set(client: TestClient) -> None:
    client.get("/read", headers=bearer("not-a-token"))
    counted = {
        sample.labels["reason"]
        for metric in REGISTRY.collect()
        if metric.name == "codequal_auth_failures"
        for sample in metric.samples
    }
    assert "malformed" in counted
    assert counted <= set(REASONS)  # whatever else this process has rejected so far


def test_require_refuses_an_unknown_scope_when_the_route_is_declared(
    settings: Settings, store: KeyStore
) -> None:
    auth = Authenticator(settings, TokenVerifier.from_settings(settings), store)
    with pytest.raises(ValueError, match="valid scopes are"):
        auth.require("monitoring:write")


def test_build_authenticator_generates_the_secret_that_token_create_uses(
    tmp_path: Path, database: Database, clock: Clock
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    auth = build_authenticator(settings, database, clock=clock)
    assert (tmp_path / "data" / SECRET_FILE).exists()
    token = mint_token(
        load_or_create_secret(tmp_path / "data"), "ops", ["monitoring:read"], 60, now=clock.now
    )
    with TestClient(make_app(settings, auth)) as built_client:
        response = built_client.get("/read", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["subject"] == "ops"
