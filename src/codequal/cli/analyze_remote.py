"""``codequal analyze --server``: submit to a running CodeQual and wait for the report.

A token with only ``analyses:write`` is enough: the server lets the principal that submitted
an analysis read it back (``GET /api/analyses/{id}`` answers the submitting subject as well as
``monitoring:read``). Every problem ends in one sentence on stderr and exit 2, never a
traceback.
"""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

import click
import httpx

from codequal.analysis.store import FINISHED, AnalysisRequest
from codequal.cli.common import EXIT_USAGE

WAIT_SECONDS = 3600.0
POLL_SECONDS = 1.0
TRANSIENT = (502, 503, 504)
RETRIES = 10  # transient errors in a row before giving up


def fail(message: str) -> NoReturn:
    click.echo(f"codequal: {message}", err=True)
    sys.exit(EXIT_USAGE)


def remote_analysis(
    server: str, token: str | None, request: AnalysisRequest, sarif: bool, all_findings: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The finished report (and its SARIF when asked for) of an analysis run by ``server``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {
        "repositoryUrl": request.repository_url,
        "base": request.base,
        "head": request.head,
        "mode": request.mode,
        "prNumber": request.pr_number,
    }
    params = {"allFindings": "true"} if all_findings else {}
    with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=30) as client:
        submitted = _call(client, server, "POST", "/api/analyses", 202, json=body)
        url = str(submitted.get("url") or f"/api/analyses/{submitted.get('id')}")
        report = _wait(client, server, url, params)
        log = _call(client, server, "GET", url, 200, params={**params, "format": "sarif"})
        return report, log if sarif else None


def _wait(client: httpx.Client, server: str, url: str, params: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        report = _call(client, server, "GET", url, 200, params=params)
        if report.get("status") in FINISHED:
            return report
        time.sleep(POLL_SECONDS)
    fail(f"the analysis at {server}{url} did not finish within an hour")


def _call(
    client: httpx.Client, server: str, method: str, path: str, expected: int, **kwargs: Any
) -> dict[str, Any]:
    """One request, retrying transient failures; any other problem ends the command."""
    for attempt in range(RETRIES):
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            if attempt == RETRIES - 1:
                fail(f"cannot reach {server}: {exc}")
            time.sleep(POLL_SECONDS)
            continue
        if response.status_code in TRANSIENT and attempt < RETRIES - 1:
            time.sleep(POLL_SECONDS)
            continue
        if response.status_code != expected:
            fail(refusal(response))
        return _json(response, server)
    fail(f"{server} kept answering with an error")


def _json(response: httpx.Response, server: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        fail(f"{server} answered {response.request.url.path} with something that is not JSON")
    if not isinstance(data, dict):
        fail(f"{server} answered {response.request.url.path} with an unexpected JSON document")
    return data


def refusal(response: httpx.Response) -> str:
    """A sentence for an answer the CLI cannot use."""
    detail = _detail(response)
    code = response.status_code
    if code == 401:
        return (
            f"the server refused the token (401): {detail}; pass one with --token or CODEQUAL_TOKEN"
        )
    if code == 403:
        return f"the token is not allowed to do this (403): {detail}"
    if code == 404:
        return f"the server has no {response.request.url.path} (404): {detail}"
    if code in (400, 413, 422):
        return f"the server refused the analysis ({code}): {detail}"
    return f"the server answered {code}: {detail}"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error")
        if isinstance(detail, list):  # FastAPI's validation errors
            return "; ".join(
                str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail
            )
        return str(detail)
    return str(body)[:300]
