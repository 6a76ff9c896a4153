"""``/api/analyses``: submit pull-request analyses and read their reports."""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from prometheus_client import generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from codequal.analysis.collector import DEEPWIKI_REGISTRY, snapshot
from codequal.analysis.credentials import without_userinfo
from codequal.analysis.policy import RepositoryPolicy, RepositoryRefused
from codequal.analysis.repo import ref_problem
from codequal.analysis.sarif import to_sarif
from codequal.analysis.store import AnalysisRecord, AnalysisRequest
from codequal.api.errors import FastJSONResponse, error_response
from codequal.api.openapi import PROMETHEUS_TEXT
from codequal.api.params import MAX_OFFSET
from codequal.runtime.process import Runtime

Guard = Callable[..., Any]
READ_SCOPE = "monitoring:read"
WRITE_SCOPE = "analyses:write"


class AnalysisIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    repository_url: str = Field(alias="repositoryUrl", min_length=1, max_length=1000)
    base: str = Field(min_length=1, max_length=250)
    head: str = Field(min_length=1, max_length=250)
    pr_number: int | None = Field(default=None, alias="prNumber", ge=1, le=2**31 - 1)
    mode: Literal["quick", "comprehensive", "deep", "auto"] = "auto"


def may_read(principal: Any, record: AnalysisRecord) -> bool:
    """``monitoring:read`` reads every analysis; an ``analyses:write`` principal reads the
    ones it submitted (its token's subject), which is how a CI job polls its own."""
    if principal.has(READ_SCOPE):
        return True
    return record.user_id is not None and record.user_id == principal.subject


def analyses_router(state: Runtime, require: Guard, policy: RepositoryPolicy) -> APIRouter:
    router = APIRouter(prefix="/api/analyses", tags=["analyses"])
    writer = Annotated[Any, Depends(require(WRITE_SCOPE))]
    reader = Annotated[Any, Depends(require(READ_SCOPE))]
    reader_or_owner = Annotated[Any, Depends(require(READ_SCOPE, WRITE_SCOPE))]

    @router.post("", status_code=202, summary="Queue an analysis (scope analyses:write)")
    def submit(body: AnalysisIn, principal: writer) -> Any:
        service = state.started.analysis if state.started else None
        if service is None:
            return error_response(503, "not ready", "the analysis workers are starting")
        try:
            policy.check(without_userinfo(body.repository_url))
        except RepositoryRefused as exc:  # says which rule, never what is on this server
            return error_response(400, "repository not accepted", str(exc))
        for ref in (body.base, body.head):
            if (problem := ref_problem(ref)) is not None:
                return error_response(
                    400, "invalid ref", f"ref {ref!r} is not a valid git ref: {problem}"
                )
        user = getattr(principal, "subject", None)
        analysis_id = service.submit(
            AnalysisRequest(
                body.repository_url, body.base, body.head, body.mode, body.pr_number, user
            )
        )
        return FastJSONResponse(
            {"id": analysis_id, "status": "queued", "url": f"/api/analyses/{analysis_id}"},
            status_code=202,
        )

    @router.get(
        "/{analysis_id}",
        summary="Status, timings, coverage, findings and cost of one analysis "
        "(monitoring:read, or analyses:write for the analyses its subject submitted)",
    )
    def get(
        analysis_id: str,
        principal: reader_or_owner,
        format: Literal["json", "sarif"] = "json",
        all_findings: Annotated[bool, Query(alias="allFindings")] = False,
    ) -> Any:
        service = state.started.analysis if state.started else None
        record = service.store.get(analysis_id) if service is not None else None
        if record is None or not may_read(principal, record):
            return error_response(404, "analysis not found", analysis_id)
        if format == "sarif":
            return FastJSONResponse(
                to_sarif(record, all_findings), media_type="application/sarif+json"
            )
        return FastJSONResponse(record.to_report(all_findings))

    @router.get("", summary="List analyses, newest first, with filters and paging")
    def list_(
        _: reader,
        status: Literal["queued", "running", "completed", "partial", "failed", "rejected"]
        | None = None,
        repository: Annotated[str | None, Query(alias="repositoryUrl")] = None,
        mode: Literal["quick", "comprehensive", "deep"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Any:
        service = state.started.analysis if state.started else None
        if service is None:
            return error_response(503, "not ready", "the analysis workers are starting")
        rows, total = service.store.list(
            status=status, repository_url=repository, mode=mode, limit=limit, offset=offset
        )
        items = [{k: v for k, v in r.to_report().items() if k != "findings"} for r in rows]
        return FastJSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})

    return router


def deepwiki_router(state: Runtime, require: Guard) -> APIRouter:
    router = APIRouter(prefix="/api/monitoring/deepwiki", tags=["deepwiki"])
    reader = Annotated[Any, Depends(require("monitoring:read"))]

    @router.get("/metrics", summary="DeepWiki metrics as JSON")
    def metrics_json(_: reader) -> Any:
        return FastJSONResponse(snapshot())

    @router.get(
        "/metrics-prometheus",
        summary="DeepWiki metrics in Prometheus text format",
        responses=PROMETHEUS_TEXT,  # type: ignore[arg-type]
    )
    def metrics_text(_: reader) -> Any:
        return Response(generate_latest(DEEPWIKI_REGISTRY), media_type="text/plain; version=0.0.4")

    return router
