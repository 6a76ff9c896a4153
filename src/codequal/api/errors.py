"""One error shape for every 4xx/5xx: ``{"error": "...", "detail": ...}``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


class FastJSONResponse(JSONResponse):
    """JSON rendered by orjson (datetimes, dataclasses and numpy-free floats included)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS)


def error_response(status: int, error: str, detail: Any = None) -> FastJSONResponse:
    return FastJSONResponse({"error": error, "detail": detail}, status_code=status)


async def _http_error(_request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return error_response(exc.status_code, detail or _REASONS.get(exc.status_code, "error"))


async def _validation_error(_request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors()
    ]
    return error_response(422, "the request is invalid", problems)


async def _unhandled(_request: Request, exc: Exception) -> FastJSONResponse:
    # The middleware has already captured and logged it; the client gets no internals.
    return error_response(500, "internal server error", None)


_REASONS = {404: "not found", 405: "method not allowed", 401: "unauthorised", 403: "forbidden"}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
