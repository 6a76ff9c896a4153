"""A size limit on every request body, enforced before authentication and before parsing.

The outermost middleware: a declared ``Content-Length`` over the limit is refused with 413
before a byte is read, and a body without one (chunked) is counted as it arrives and refused
the moment it passes the limit. Without it, FastAPI read an unauthenticated 200 MiB JSON body
into memory before answering 401. The ingest routes keep their own, finer limits (compressed
and decompressed, per format); this layer only bounds what reaches them.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codequal.api.errors import error_response
from codequal.ingest.limits import LOKI, OTLP, SENTRY_ENVELOPE, SENTRY_STORE, size_text

MiB = 1024 * 1024
API_BODY_LIMIT = 1 * MiB  # JSON requests to the API: silences, analyses, key admin
# Paths with a body format of their own, and the most their routes accept on the wire.
INGEST_LIMITS: tuple[tuple[str, int], ...] = (
    ("/v1/", OTLP.compressed),
    ("/loki/", LOKI.compressed),
    ("/api/v1/write", OTLP.compressed),
)


def limit_for(path: str) -> int:
    """The largest body ``path`` may receive."""
    if path.startswith("/api/") and path.endswith("/envelope/"):
        return SENTRY_ENVELOPE.compressed
    if path.startswith("/api/") and path.endswith("/store/"):
        return SENTRY_STORE.compressed
    for prefix, limit in INGEST_LIMITS:
        if path.startswith(prefix):
            return limit
    return API_BODY_LIMIT


class BodyLimitMiddleware:
    """Refuses bodies over :func:`limit_for` their path with 413, reading none of the excess."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(
                scope, receive, send, status=400, error="bad request",
                detail="Content-Length is invalid",
            )  # fmt: skip
            return
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, **_too_large(limit))
            return
        state = {"started": False, "refused": False, "seen": 0}

        async def counted() -> Message:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > limit:
                    # Answer now: the app would turn any error raised here into a 400. It then
                    # sees the client gone and stops reading; its own answer is dropped.
                    state["refused"] = True
                    if not state["started"]:
                        await _refuse(scope, receive, send, **_too_large(limit))
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counted, watched)


def _content_length(scope: Scope) -> int | None:
    """The declared length; None without one; -1 when it is not a whole number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) <= 18 else -1
    return None


def _too_large(limit: int) -> dict[str, Any]:
    detail = f"the request body is larger than the {size_text(limit)} this endpoint accepts"
    return {"status": 413, "error": "payload too large", "detail": detail}


async def _refuse(
    scope: Scope, receive: Receive, send: Send, *, status: int, error: str, detail: str
) -> None:
    response = error_response(status, error, detail)
    response.headers["Connection"] = "close"  # the unread rest of the body is not wanted
    await response(scope, receive, send)
