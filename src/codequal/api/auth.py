"""FastAPI glue for authentication: bearer JWTs and service keys, scopes, failure limits.

Routes declare what they need with ``Depends(auth.require("monitoring:read"))``; the
dependency returns the :class:`~codequal.security.Principal`. Missing or invalid credentials
are 401, a valid credential without the scope is 403, and an address that keeps failing is 429
for the rest of its one-minute window. Every rejection is counted in
``codequal_auth_failures_total{reason}``; the credential itself is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from codequal.api.errors import FastJSONResponse, error_response
from codequal.config import Settings
from codequal.exceptions import AuthError
from codequal.security.failures import FailureLimiter
from codequal.security.key_store import KEY_ID_HEX, KEY_PREFIX, KeyStore
from codequal.security.keyfiles import is_asymmetric
from codequal.security.secret import load_or_create_secret
from codequal.security.tokens import (
    ALL_SCOPES,
    Principal,
    TokenVerifier,
)
from codequal.storage.db import Database
from codequal.telemetry.metrics import AUTH_FAILURES

if TYPE_CHECKING:
    from starlette.types import Scope

_log = logging.getLogger(__name__)

REALM = 'Bearer realm="codequal"'

Clock = Callable[[], float]


class ErrorBody(BaseModel):
    """The API's one error shape, for the OpenAPI documentation of 401 / 403 / 429."""

    error: str
    detail: Any = None


# Pass as ``responses=`` to a protected router or route so /docs lists its error answers.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No token, or an invalid one; detail says why."},
    403: {"model": ErrorBody, "description": "The token lacks the scope this endpoint needs."},
    429: {
        "model": ErrorBody,
        "description": "Too many failed authentications from this address; see Retry-After.",
    },
}


class AuthHTTPError(HTTPException):
    """A 401 / 403 / 429 / 503 in the API's error shape, with the headers the status needs."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        # detail=message keeps the answer readable even where only the generic handler runs.
        super().__init__(status_code=status, detail=message, headers=headers)
        self.error = error
        self.message = message


async def auth_error_handler(_request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, AuthHTTPError)
    response = error_response(exc.status_code, exc.error, exc.message)
    response.headers.update(exc.headers or {})
    return response


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def failure_subjects(client: str, header: str | None) -> list[str]:
    """What a failed credential counts against: its address, and a service key's id."""
    subjects = [f"address:{client}"]
    token = (header or "").strip().partition(" ")[2].strip()
    if token.startswith(KEY_PREFIX):
        key_id = token[len(KEY_PREFIX) :].partition("_")[0][:KEY_ID_HEX]
        subjects.append(f"key:{key_id}")
    return subjects


def _bearer_token(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed", "the Authorization header must be 'Bearer <token>'")
    return token.strip()


def _is_service_key(header: str | None) -> bool:
    return header is not None and header.strip().partition(" ")[2].strip().startswith(KEY_PREFIX)


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest from revealing the token's length.
    return hashlib.sha256(value.encode()).digest()


class Authenticator:
    """Checks bearer credentials (JWT or ``cq_`` service key) and scopes for the API."""

    def __init__(
        self,
        settings: Settings,
        verifier: TokenVerifier,
        key_store: KeyStore | None,
        clock: Clock = time.time,
    ) -> None:
        self._verifier = verifier
        self._keys = key_store
        self._clock = clock
        self._limit = settings.auth_failures_per_minute
        self._limiter = FailureLimiter(self._limit)
        token = settings.metrics_token
        self._metrics_digest = _digest(token.get_secret_value()) if token is not None else None
        self._bearer = HTTPBearer(
            scheme_name="bearer",
            bearerFormat="JWT or cq_ service key",
            description="A JWT whose `scope` claim lists the scopes (space-separated), "
            "or a service key from `codequal keys create`.",
            auto_error=False,
        )

    @property
    def failures(self) -> FailureLimiter:
        """The failure counts, shared with the ingest routes' own key checks (Sentry DSNs)."""
        return self._limiter

    def install(self, app: FastAPI) -> None:
        """Answer this module's errors in the API's error shape, with their headers."""
        app.add_exception_handler(AuthHTTPError, auth_error_handler)

    def require(self, scope: str, *alternatives: str) -> Callable[..., Awaitable[Principal]]:
        """A dependency that authenticates the request and demands ``scope``, or any one of
        ``alternatives`` (the route then decides what each may see)."""
        scopes = (scope, *alternatives)
        for name in scopes:
            if name not in ALL_SCOPES:
                raise ValueError(
                    f"unknown scope {name!r}: valid scopes are {', '.join(ALL_SCOPES)}"
                )

        # Declares the bearer scheme (and the scope) in OpenAPI; the header is read in authorize.
        declared = Security(self._bearer, scopes=list(scopes))

        async def dependency(
            request: Request, _credentials: HTTPAuthorizationCredentials | None = declared
        ) -> Principal:
            # A JWT is checked on the event loop: it is CPU work (once per token, then a cache
            # hit), cheaper than the hop to a worker thread. A service key is a database read.
            if _is_service_key(request.headers.get("authorization")):
                return await run_in_threadpool(self.authorize, request, *scopes)
            return self.authorize(request, *scopes)

        return dependency

    def authorize(self, request: Request, scope: str, *alternatives: str) -> Principal:
        """The request's principal if it holds ``scope`` (or one of ``alternatives``); raises
        AuthHTTPError otherwise."""
        principal = self._guarded(request, self._verify)
        scopes = (scope, *alternatives)
        if not any(principal.has(name) for name in scopes):
            wanted = " or ".join(scopes)
            self._count(request, "scope", f"{principal.subject} lacks {wanted}")
            granted = ", ".join(sorted(principal.scopes)) or "none"
            challenge = f'{REALM}, error="insufficient_scope", scope="{" ".join(scopes)}"'
            raise AuthHTTPError(
                403,
                "forbidden",
                f"this endpoint needs the {wanted} scope; the credential grants {granted}",
                {"WWW-Authenticate": challenge},
            )
        request.state.principal = principal
        return principal

    def quiet_principal(self, scope: Scope, needed: str) -> Principal | None:
        """The principal of a request whose bearer JWT verifies and holds ``needed``; None in
        every other case.

        Counts and records nothing, so it is only for callers that leave every None to
        :meth:`authorize` (which refuses, counts and limits as usual). Service keys are None:
        their check is a database read that also records the key's use.
        """
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if not header:
            return None
        try:
            token = _bearer_token(header)
        except AuthError:
            return None
        if token.startswith(KEY_PREFIX):
            return None
        try:
            principal = self._verifier.verify(token, self._clock())
        except AuthError:
            return None
        return principal if principal.has(needed) else None

    def metrics_guard(self, request: Request) -> None:
        """Dependency for /metrics: demands CODEQUAL_METRICS_TOKEN when it is set."""
        if self._metrics_digest is not None:
            self._guarded(request, self._verify_metrics_token)

    # -- the shared path ---------------------------------------------------------------------
    def _guarded(self, request: Request, check: Callable[[str, float], Principal]) -> Principal:
        """Verify first: a good credential is served whatever else came from its address."""
        now = self._clock()
        header = request.headers.get("authorization")
        try:
            if not header:
                raise AuthError("missing", "this endpoint needs 'Authorization: Bearer <token>'")
            return check(_bearer_token(header), now)
        except AuthError as exc:
            # No credential guesses nothing, so only presented credentials count as failures.
            if exc.reason != "missing":
                self.refuse_failure(request, _client(request), header, now)
            self._count(request, exc.reason, exc.message)
            error = "" if exc.reason == "missing" else ', error="invalid_token"'
            raise AuthHTTPError(
                401, "unauthorised", exc.message, {"WWW-Authenticate": REALM + error}
            ) from None

    def refuse_failure(self, request: Request, client: str, header: str | None, now: float) -> None:
        """Count a failed credential; raise 429 (Retry-After) if its client or key id already
        failed too often. Logged once per burst; every refusal is counted."""
        subjects = failure_subjects(client, header)
        wait = self._limiter.retry_after(subjects, now)
        crossed = self._limiter.record(subjects, now)
        if crossed:
            _log.warning(
                "authentication failures over the limit (%s a minute) from %s; failing "
                "attempts get 429 until they slow down",
                self._limit,
                ", ".join(subjects),
            )
        if wait is None:
            return
        AUTH_FAILURES.labels(reason="rate_limited").inc()
        seconds = max(1, math.ceil(wait))
        raise AuthHTTPError(
            429,
            "too many failed authentications",
            f"too many failed authentications from this client; retry in {seconds} s",
            {"Retry-After": str(seconds)},
        )

    def _verify(self, token: str, now: float) -> Principal:
        if not token.startswith(KEY_PREFIX):
            return self._verifier.verify(token, now)
        if self._keys is None:
            raise AuthError("unknown_key", "service keys are not enabled on this server")
        try:
            return self._keys.verify(token, now)
        except sa.exc.SQLAlchemyError:
            _log.warning("service key check failed: the database is unavailable", exc_info=True)
            raise AuthHTTPError(
                503, "service unavailable", "service keys cannot be checked right now"
            ) from None

    def _verify_metrics_token(self, token: str, _now: float) -> Principal:
        assert self._metrics_digest is not None
        if not hmac.compare_digest(_digest(token), self._metrics_digest):
            raise AuthError("metrics_token", "the bearer token is not the /metrics token")
        return Principal(subject="metrics", scopes=frozenset(), via="key")

    def _count(self, request: Request, reason: str, message: str) -> None:
        AUTH_FAILURES.labels(reason=reason).inc()
        # The path without its query string: a token pasted into a URL must not reach the log.
        _log.debug(
            "authentication rejected (%s): %s; client %s, %s %s",
            reason,
            message,
            _client(request),
            request.method,
            request.url.path,
        )


def build_authenticator(
    settings: Settings, db: Database, clock: Clock = time.time
) -> Authenticator:
    """The server's authenticator: the configured secret or public key, else the data-dir secret.

    Raises ConfigError (naming the variable) when the key material is unusable.
    """
    secret = None
    if settings.jwt_secret is None and not is_asymmetric(settings):
        secret = load_or_create_secret(settings.data_dir)
    verifier = TokenVerifier.from_settings(settings, secret)
    return Authenticator(settings, verifier, KeyStore(db), clock=clock)
