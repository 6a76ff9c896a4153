"""Agent failures, deep mode's LLM summary and its cost, and stale knowledge refresh."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from codequal.analysis import agents
from codequal.analysis.agents.base import AgentError, AgentInput, AgentResult, Finding
from codequal.analysis.service import AnalysisService
from codequal.analysis.store import AnalysisRequest, KnowledgeStore
from codequal.config import load_settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.storage.db import Database
from codequal.telemetry.setup import Telemetry

from .conftest import PlantedRepo


class Crashing:
    provider = "local"
    ceiling = "high"

    def __init__(self, name: str) -> None:
        self.name = name

    def review(self, inp: AgentInput) -> AgentResult:
        raise AgentError(self.name, "tool exited with status 2")

    def run(self, inp: AgentInput) -> list[Finding]:
        return list(self.review(inp).findings)


class FakeOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint on loopback that checks the request's wire format."""

    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.seen.append({"path": self.path, "auth": self.headers["Authorization"], **body})
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Risky: a key leaked."},
                 "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
        }  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def llm_url() -> Iterator[str]:
    FakeOpenAI.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def build(database: Database, tmp_path: Path, **settings: Any) -> tuple[AnalysisService, Telemetry]:
    cfg = load_settings(data_dir=tmp_path / "data", log_format="json", **settings)
    telemetry = setup_telemetry(cfg, database, bridge_stdlib=False)
    return build_analysis(cfg, database, telemetry), telemetry


def run(service: AnalysisService, repo: PlantedRepo, mode: str) -> dict[str, Any]:
    analysis_id = service.submit(AnalysisRequest(str(repo.path), "main", "feature", mode))
    record = service.pool.run_one(analysis_id)
    assert record is not None
    return record.to_report()


def test_a_crashing_agent_fails_its_step_and_makes_the_analysis_partial(
    database: Database, tmp_path: Path, planted_repo: PlantedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(agents.AGENTS, "performance", Crashing("performance"))
    service, telemetry = build(database, tmp_path)
    try:
        report = run(service, planted_repo, "comprehensive")
    finally:
        telemetry.shutdown(10)
    assert report["status"] == "partial"  # a report, but it says what it could not read
    assert report["coverage"]["agents"]["performance"]["status"] == "failed"
    (error,) = report["summary"]["agentErrors"].items()
    assert error[0] == "performance" and "tool exited with status 2" in error[1]
    assert "agent:performance" in report["timings"]
    assert any(f["agent"] == "security" for f in report["findings"])


def test_a_crashing_security_agent_fails_the_analysis(
    database: Database, tmp_path: Path, planted_repo: PlantedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(agents.AGENTS, "security", Crashing("security"))
    service, telemetry = build(database, tmp_path)
    try:
        report = run(service, planted_repo, "quick")
    finally:
        telemetry.shutdown(10)
    assert report["status"] == "failed"
    assert report["error"]["type"] == "agent_AgentError"
    assert report["findings"] == []


def test_deep_mode_asks_the_llm_and_prices_its_tokens(
    database: Database, tmp_path: Path, planted_repo: PlantedRepo, llm_url: str
) -> None:
    service, telemetry = build(
        database, tmp_path, llm_base_url=llm_url, llm_model="gpt-4o-mini", llm_api_key="sk-test-1"
    )
    try:
        report = run(service, planted_repo, "deep")
    finally:
        telemetry.shutdown(10)
    (request,) = FakeOpenAI.seen
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test-1"
    assert request["model"] == "gpt-4o-mini"
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert "app.py" in request["messages"][1]["content"]
    llm = report["cost"]["llm"]
    assert (llm["inputTokens"], llm["outputTokens"], llm["pricedFromTable"]) == (1200, 300, True)
    # gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens
    assert llm["cost"] == pytest.approx((1200 * 0.15 + 300 * 0.60) / 1e6)
    assert report["cost"]["components"]["llm"] == llm["cost"]
    assert report["cost"]["total"] == pytest.approx(sum(report["cost"]["components"].values()))
    assert report["summary"]["llmSummary"] == "Risky: a key leaked."


def test_without_a_provider_deep_mode_runs_no_llm_step_and_costs_nothing_for_it(
    database: Database, tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    service, telemetry = build(database, tmp_path)
    try:
        report = run(service, planted_repo, "deep")
    finally:
        telemetry.shutdown(10)
    assert report["cost"]["components"]["llm"] == 0.0
    assert report["cost"]["llm"] is None


def test_a_stale_profile_is_reused_and_refreshed_in_the_background(
    database: Database, tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    service, telemetry = build(database, tmp_path)
    service.orchestrator.background = lambda fn: fn()  # the refresh, inline: no waiting on a thread
    store = KnowledgeStore(database)
    now = service.orchestrator.clock()
    store.put(
        str(planted_repo.path), {"primaryLanguage": "Cobol", "sizeClass": "small"}, now - 3 * 86_400
    )
    try:
        report = run(service, planted_repo, "quick")
    finally:
        telemetry.shutdown(10)
    assert report["summary"]["profile"]["primaryLanguage"] == "Cobol"  # reused as it was
    assert "trigger-deepwiki" not in report["timings"]
    refreshed = store.get(str(planted_repo.path))
    assert refreshed is not None and refreshed.profile["primaryLanguage"] == "Python"
    assert refreshed.analysed_at >= now
