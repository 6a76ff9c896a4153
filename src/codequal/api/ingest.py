"""Ingest routes: Sentry envelopes, OTLP/HTTP traces, logs and metrics, Loki push, Prometheus
remote write.

Each request is authenticated, rate limited per key and size-checked before its body is read;
decoded in a worker thread (a small Sentry envelope on the event loop); and stored, in one
transaction per store shared with the requests arriving meanwhile, before the 2xx is sent
(:mod:`.ingest_service`). An acknowledged entry is therefore committed and survives
``kill -9``; a refused one changed nothing. Bad input is always a 4xx naming the problem,
never a 5xx.
"""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import base64
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from codequal.api.auth import Authenticator, AuthHTTPError, auth_error_handler
from codequal.api.errors import FastJSONResponse, error_response
from codequal.api.ingest_service import (
    DEFAULT_BURST,
    DEFAULT_RATE,
    IngestService,
    on_tsdb_worker,
    principal_key,
    storage_error,
)
from codequal.api.middleware import FindShortcut, Shortcut, first_shortcut
from codequal.ingest import IngestError, otlp, remote_write, sentry
from codequal.ingest.limits import (
    LOKI,
    OTLP,
    SENTRY_ENVELOPE,
    SENTRY_STORE,
)
from codequal.security.key_store import KEY_PREFIX
from codequal.security.tokens import SCOPE_INGEST_WRITE, Principal
from codequal.storage.db import Database

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE", "IngestService", "ingest_router", "ingest_routes"]


def _error(exc: IngestError) -> Response:
    response = error_response(exc.status, exc.title, exc.message)
    response.headers.update(exc.headers)
    return response


async def _guarded(
    work: Callable[[], Awaitable[Response]], on_error: Callable[[IngestError], Response]
) -> Response:
    """Run ``work``; turn every refusal, and every storage failure, into its response."""
    try:
        return await work()
    except IngestError as exc:
        return on_error(exc)
    except sa.exc.SQLAlchemyError as exc:
        return on_error(storage_error(exc))


def ingest_router(
    db: Database, ready: threading.Event, auth: Authenticator, **options: Any
) -> APIRouter:
    """The ingest routes alone; ``options`` (``limiter``, the per-key rate, and ``clock``) are
    injectable for tests, as :class:`IngestService` takes them."""
    return ingest_routes(IngestService(db, ready, auth.failures, **options), auth)[0]


def ingest_routes(ingest: IngestService, auth: Authenticator) -> tuple[APIRouter, FindShortcut]:
    """The ingest routes, and the shortcut to the Sentry and remote write endpoints for
    TelemetryMiddleware.

    sentry-sdk sends one request per event, so the framework's routing and dependency
    solving around a Sentry request cost as much as decoding and storing its event; the
    shortcut calls the same handler as the routes, which stay for OpenAPI and for an app
    without the middleware.
    """
    router = APIRouter(tags=["ingest"])
    writer = Annotated[Principal, Depends(auth.require(SCOPE_INGEST_WRITE))]
    # Loki clients and Prometheus's remote_write often can only send Basic auth.
    authenticate = basic_or_bearer_writer(auth)
    basic_or_bearer = Annotated[Principal, Depends(authenticate)]
    handle = _sentry_routes(router, ingest)

    @router.post("/v1/traces", summary="OTLP/HTTP traces (protobuf or JSON)")
    async def traces(request: Request, principal: writer) -> Response:
        return await _otlp(ingest, "traces", request, principal)

    @router.post("/v1/logs", summary="OTLP/HTTP logs (protobuf or JSON)")
    async def logs(request: Request, principal: writer) -> Response:
        return await _otlp(ingest, "logs", request, principal)

    @router.post("/v1/metrics", summary="OTLP/HTTP metrics into the metric history")
    async def metrics(request: Request, principal: writer) -> Response:
        return await _otlp(ingest, "metrics", request, principal)

    @router.post(_REMOTE_WRITE, status_code=204, summary="Prometheus remote write 1.0")
    async def remote_write_push(request: Request, principal: basic_or_bearer) -> Response:
        return await _remote_write(ingest, request, principal)

    @router.post("/loki/api/v1/push", status_code=204, summary="Loki push (JSON or protobuf)")
    async def loki_push(request: Request, principal: basic_or_bearer) -> Response:
        return await _loki(ingest, request, principal)

    return router, first_shortcut(
        _sentry_shortcut(handle), _remote_write_shortcut(ingest, authenticate)
    )


def basic_or_bearer_writer(auth: Authenticator) -> Callable[[Request], Awaitable[Principal]]:
    """ingest:write from a bearer credential, or from Basic auth whose password is one.

    The Basic user is the key's id (the 16 hex digits after ``cq_``) or a tenant name, which
    is accepted and not used: the store has one tenant. A user that is a key id must be the
    password's own.
    """
    bearer = auth.require(SCOPE_INGEST_WRITE)

    async def dependency(request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is not None and header[:6].lower() == "basic ":
            request = _as_bearer(request, basic_password(header))
        return await bearer(request, None)

    return dependency


_KEY_ID = re.compile(r"[0-9a-f]{16}")


def basic_password(header: str) -> str:
    """The password of ``Basic base64(user:password)``, checked against its user."""
    try:
        user, sep, password = (
            base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        )
    except (ValueError, UnicodeDecodeError):
        sep, user, password = "", "", ""
    if not sep or not password:
        raise AuthHTTPError(
            401,
            "unauthorised",
            "Basic credentials must be base64 of 'user:password' with a service key as password",
            {"WWW-Authenticate": 'Basic realm="codequal"'},
        )
    if _KEY_ID.fullmatch(user) and not password.startswith(f"{KEY_PREFIX}{user}_"):
        raise AuthHTTPError(
            401,
            "unauthorised",
            "the Basic user is a key id, but not the id of the key given as password",
            {"WWW-Authenticate": 'Basic realm="codequal"'},
        )
    return password


def _as_bearer(request: Request, token: str) -> Request:
    """The same request with ``Authorization: Bearer <token>``, for the bearer check alone."""
    scope = dict(request.scope)
    headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
    scope["headers"] = [*headers, (b"authorization", f"Bearer {token}".encode("latin-1"))]
    return Request(scope, request.receive)


SentryHandler = Callable[[Request, int, bool], Awaitable[Response]]
_SENTRY_PATH = re.compile(r"/api/([0-9]+)/(envelope|store)/")
_SENTRY_ROUTES = {"envelope": "/api/{project_id}/envelope/", "store": "/api/{project_id}/store/"}


def _sentry_shortcut(handle: SentryHandler) -> FindShortcut:
    """Matches exactly what the two Sentry routes match (a POST, a whole-number project id)."""

    def find(scope: Scope) -> Shortcut | None:
        if scope["method"] != "POST" or not scope["path"].startswith("/api/"):
            return None
        found = _SENTRY_PATH.fullmatch(scope["path"])
        if found is None:
            return None
        project_id, kind = int(found[1]), found[2]

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handle(Request(scope, receive), project_id, kind == "store")
            await response(scope, receive, send)

        return Shortcut(_SENTRY_ROUTES[kind], app)

    return find


_REMOTE_WRITE = "/api/v1/write"


def _remote_write_shortcut(
    ingest: IngestService, authenticate: Callable[[Request], Awaitable[Principal]]
) -> FindShortcut:
    """``POST /api/v1/write`` without the framework's routing and dependency solving: the same
    credential check and handler as the route. Prometheus sends a request per 2 000 samples
    per shard, and on the event loop's thread, which takes turns at the GIL with the thread
    storing the samples, the framework cost more than reading the request."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            principal = await authenticate(request)
        except AuthHTTPError as exc:
            response: Response = await auth_error_handler(request, exc)
        else:
            response = await _remote_write(ingest, request, principal)
        await response(scope, receive, send)

    shortcut = Shortcut(_REMOTE_WRITE, app)

    def find(scope: Scope) -> Shortcut | None:
        if scope["path"] == _REMOTE_WRITE and scope["method"] == "POST":
            return shortcut
        return None

    return find


def _sentry_routes(router: APIRouter, ingest: IngestService) -> SentryHandler:
    async def handle(request: Request, project_id: int, store: bool) -> Response:
        async def work() -> FastJSONResponse:
            # SDKs send the key in a header: the query string is parsed only when it is not there.
            token = sentry.header_key(request.headers.get("x-sentry-auth")) or sentry.public_key(
                None, request.query_params.get("sentry_key")
            )
            verified = ingest.dsn_keys.cached(token)
            if verified is None:
                verified = await run_in_threadpool(ingest.verify_dsn_key, request, token)
            key_id = ingest.dsn_keys.admit(verified, project_id)
            body = await ingest.body(request, SENTRY_STORE if store else SENTRY_ENVELOPE, key_id)
            encoding = request.headers.get("content-encoding")
            answer = await ingest.store_sentry(body, encoding, project_id, store)
            return FastJSONResponse(answer)

        return await _guarded(work, _error)

    @router.post("/api/{project_id}/envelope/", summary="Sentry envelopes (DSN key auth)")
    async def envelope(project_id: int, request: Request) -> Response:
        return await handle(request, project_id, store=False)

    @router.post("/api/{project_id}/store/", summary="Sentry's legacy store endpoint")
    async def store(project_id: int, request: Request) -> Response:
        return await handle(request, project_id, store=True)

    return handle


async def _otlp(
    ingest: IngestService, kind: str, request: Request, principal: Principal
) -> Response:
    try:
        encoding = otlp.encoding_of(request.headers.get("content-type"))
    except IngestError as exc:
        return _error(exc)

    def refuse(exc: IngestError) -> Response:
        content, media_type = otlp.encode_error(encoding, exc)
        return Response(content, exc.status, headers=exc.headers, media_type=media_type)

    async def work() -> Response:
        body = await ingest.body(request, OTLP, principal_key(principal))
        # metrics append to the metric history: on its one thread, as remote write
        run = on_tsdb_worker if kind == "metrics" else run_in_threadpool
        content = await run(ingest.store_otlp, kind, body, request, encoding)
        return Response(content, media_type=otlp.CONTENT_TYPES[encoding])

    return await _guarded(work, refuse)


async def _loki(ingest: IngestService, request: Request, principal: Principal) -> Response:
    async def work() -> Response:
        body = await ingest.body(request, LOKI, principal_key(principal))
        headers = request.headers
        encoding, content_type = headers.get("content-encoding"), headers.get("content-type")
        await run_in_threadpool(ingest.store_loki, body, encoding, content_type)
        return Response(status_code=204)

    return await _guarded(work, _error)


async def _remote_write(ingest: IngestService, request: Request, principal: Principal) -> Response:
    async def work() -> Response:
        headers = request.headers
        remote_write.check_headers(headers.get("content-type"), headers.get("content-encoding"))
        body = await ingest.body(request, remote_write.LIMIT, principal_key(principal))
        await on_tsdb_worker(ingest.store_remote_write, body)
        return Response(status_code=204)

    return await _guarded(work, _error)
