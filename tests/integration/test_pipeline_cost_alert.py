"""The pipeline counts analyses that cost more than CODEQUAL_ANALYSIS_COST_ALERT, exactly.

With every infrastructure price at 0, a deep analysis costs exactly its LLM tokens
(1200 in, 300 out at gpt-4o-mini's $0.15 / $0.60 per million: $0.00036), and one without an
LLM costs $0, so thresholds either side of those amounts pin the comparison.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from codequal.storage.db import Database
from codequal.telemetry.metrics import REGISTRY

from .conftest import PlantedRepo
from .test_pipeline_failures_and_costs import FakeOpenAI, build, run

COUNTER = "codequal_analysis_cost_over_threshold_total"
FREE = {"price_cpu_hour": 0.0, "price_memory_gb_hour": 0.0, "price_disk_gb_month": 0.0}


@pytest.fixture
def llm() -> Iterator[dict[str, Any]]:
    """Settings for a deep analysis whose LLM summary comes from a fake endpoint on loopback."""
    FakeOpenAI.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield {"llm_base_url": url, "llm_model": "gpt-4o-mini", "llm_api_key": "sk-test-1"}
    server.shutdown()


def over_threshold(mode: str, provider: str) -> float:
    value = REGISTRY.get_sample_value(COUNTER, {"mode": mode, "provider": provider})
    return value or 0.0


def analyse(
    database: Database, tmp_path: Path, repo: PlantedRepo, mode: str, **settings: Any
) -> dict[str, Any]:
    service, telemetry = build(database, tmp_path, **FREE, **settings)
    try:
        return run(service, repo, mode)
    finally:
        telemetry.shutdown(10)


@pytest.mark.parametrize(
    "case",
    [(0.0003, 1.0), (0.0004, 0.0), (None, 0.0)],
    ids=["threshold-below-the-cost", "threshold-above-the-cost", "unset"],
)
def test_an_analysis_is_counted_only_when_it_costs_more_than_the_threshold(
    database: Database,
    tmp_path: Path,
    planted_repo: PlantedRepo,
    llm: dict[str, Any],
    case: tuple[float | None, float],
) -> None:
    threshold, added = case
    before = over_threshold("deep", "openai-compatible")
    report = analyse(database, tmp_path, planted_repo, "deep", analysis_cost_alert=threshold, **llm)
    assert report["cost"]["llm"]["provider"] == "openai-compatible"
    assert report["cost"]["total"] == pytest.approx(0.00036)
    assert over_threshold("deep", "openai-compatible") - before == added


def test_an_analysis_that_costs_exactly_the_threshold_is_not_counted(
    database: Database, tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    before = over_threshold("quick", "none")
    report = analyse(database, tmp_path, planted_repo, "quick", analysis_cost_alert=0.0)
    assert report["cost"]["total"] == 0.0
    assert over_threshold("quick", "none") == before
