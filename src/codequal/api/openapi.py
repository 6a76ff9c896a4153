"""The OpenAPI document says what each route really answers when it refuses.

FastAPI documents a 422 in its own validation shape, which CodeQual never sends, and nothing
else. Every refusal here has the one error shape, ``{"error": ..., "detail": ...}``; this
module adds to each operation the refusals it can give: 400 (a value the server could not
use), 401 / 403 / 429 (authentication), 404 (a path id that is not there), 413 (a body over
its limit, checked on every route), 415 (an ingest body in an unknown type or encoding), 422
(a parameter or body that fails validation; ``detail`` lists each field) and 503 (not ready,
or a dependency down). schemathesis checks the server against this document in CI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = "ErrorBody"
_ERROR_BODY: dict[str, Any] = {
    "title": ERROR_SCHEMA,
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, in a few words."},
        "detail": {
            "description": "Why, in a sentence; for 422 a list of {field, message}.",
        },
    },
}
DESCRIPTIONS = {
    "400": "A value the server could not use; detail says which and why.",
    "401": "No credential, or one that is not valid; detail says why.",
    "403": "The credential lacks the scope this endpoint needs.",
    "404": "Nothing has this id.",
    "413": "The body is larger than this endpoint accepts; detail states the limit.",
    "415": "The body's Content-Type or Content-Encoding is not one this endpoint reads.",
    "422": "A parameter or the body is invalid; detail lists each field and why.",
    "429": "Too many requests (or failed authentications); see Retry-After.",
    "503": "Not ready yet (starting), or a dependency is down; try again later.",
}
_INGEST_TAG = "ingest"
# Prometheus's text exposition, and OpenMetrics when the Accept header asks for it.
PROMETHEUS_TEXT = {
    200: {
        "description": "The metrics, in the exposition format the Accept header chose.",
        "content": {
            "text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}},
            "application/openmetrics-text; version=1.0.0; charset=utf-8": {
                "schema": {"type": "string"}
            },
        },
    }
}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
# Prometheus's HTTP API answers its own errors in its own shape (error types bad_data,
# execution, timeout); CodeQual's copy of that API keeps it, so Grafana reads them.
PROMETHEUS_API = "/api/v1/"
PROMETHEUS_ERROR = "PrometheusError"
_PROMETHEUS_ERROR_BODY: dict[str, Any] = {
    "title": PROMETHEUS_ERROR,
    "type": "object",
    "required": ["status", "errorType", "error"],
    "properties": {
        "status": {"const": "error"},
        "errorType": {"type": "string", "description": "bad_data, execution, timeout, ..."},
        "error": {"type": "string"},
    },
}


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that documents the real error responses."""
    generated: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not generated:
            spec = get_openapi(
                title=app.title, version=app.version, routes=app.routes, tags=app.openapi_tags
            )
            generated.update(document_errors(spec))
        return generated

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with each operation's refusals added in the one error shape."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    schemas[ERROR_SCHEMA] = _ERROR_BODY
    schemas[PROMETHEUS_ERROR] = _PROMETHEUS_ERROR_BODY
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in _refusals(path, operation):
                responses[status] = _error(status)
            if _is_prometheus_api(path, operation):
                for status in ("400", "422", "503"):
                    responses[status] = _error(status, PROMETHEUS_ERROR)
    return spec


def _is_prometheus_api(path: str, operation: dict[str, Any]) -> bool:
    return path.startswith(PROMETHEUS_API) and _INGEST_TAG not in operation.get("tags", ())


def _refusals(path: str, operation: dict[str, Any]) -> list[str]:
    rules: list[tuple[Callable[[str, dict[str, Any]], bool], tuple[str, ...]]] = [
        (lambda _p, op: bool(op.get("security")), ("401", "403", "429", "503")),
        (lambda p, _op: "{" in p, ("404",)),
        (lambda _p, op: bool(op.get("parameters") or op.get("requestBody")), ("400", "422")),
        (lambda _p, _op: True, ("413",)),
        (lambda _p, op: _INGEST_TAG in op.get("tags", ()), ("400", "401", "415", "429", "503")),
    ]
    found: list[str] = []
    for applies, statuses in rules:
        if applies(path, operation):
            found += [s for s in statuses if s not in found]
    return sorted(found)


def _error(status: str, schema: str = ERROR_SCHEMA) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
