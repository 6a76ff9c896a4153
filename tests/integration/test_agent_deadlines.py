"""Agents stop on time: a tool that sleeps forever is killed, with everything it started.

The per-file limit skips the one file a tool hangs on and the rest are analysed; the agent
and analysis deadlines hold within a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codequal.analysis import agents
from codequal.analysis.agents.quality import QualityAgent
from codequal.analysis.service import AnalysisService
from codequal.analysis.store import AnalysisRequest
from codequal.config import load_settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.storage.db import Database
from codequal.telemetry.setup import Telemetry

from .review_corpus import build
from .slow_agents import Sleeper, dead

# A ruff that never returns when it is handed hang.py, and is the real ruff otherwise.
FAKE_RUFF = """
import os, subprocess, sys, time
if any(a.endswith("hang.py") for a in sys.argv[1:]):
    with open(os.environ["CQ_TEST_PIDS"], "a") as out:
        out.write(f"{os.getpid()}\\n")
    while True:
        time.sleep(3600)
sys.exit(subprocess.call([sys.executable, "-m", "ruff", *sys.argv[1:]]))
"""


@pytest.fixture
def make_service(database: Database, tmp_path: Path) -> Iterator[Any]:
    made: list[Telemetry] = []

    def make(**settings: Any) -> AnalysisService:
        cfg = load_settings(data_dir=tmp_path / "data", log_format="json", **settings)
        telemetry = setup_telemetry(cfg, database, bridge_stdlib=False)
        made.append(telemetry)
        return build_analysis(cfg, database, telemetry)

    yield make
    for telemetry in made:
        telemetry.shutdown(10)


def analyse(service: AnalysisService, repo: Path, mode: str) -> dict[str, Any]:
    analysis_id = service.submit(AnalysisRequest(str(repo), "main", "feature", mode))
    record = service.pool.run_one(analysis_id)
    assert record is not None
    return record.to_report()


def test_the_file_a_tool_hangs_on_is_skipped_and_the_other_files_analysed(
    make_service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = tmp_path / "pids"
    fake = tmp_path / "fake_ruff.py"
    fake.write_text(FAKE_RUFF)
    monkeypatch.setenv("CQ_TEST_PIDS", str(pids))
    monkeypatch.setitem(
        agents.AGENTS, "codeQuality", QualityAgent(ruff_cmd=(sys.executable, str(fake)))
    )
    repo = build(
        tmp_path,
        {"README.md": "x\n"},
        {"hang.py": "x = 1\n", "ok.py": "def f(x):\n    return x == None\n"},
    )
    report = analyse(make_service(file_timeout=1.0, agent_timeout=60.0), repo, "quick")
    assert report["status"] == "partial"
    assert [(f["file"], f["line"], f["rule"]) for f in report["findings"]] == [("ok.py", 2, "E711")]
    (skip,) = [s for s in report["coverage"]["skipped"] if s["agent"] == "codeQuality"]
    assert (skip["file"], skip["reason"]) == ("hang.py", "timeout")
    assert report["coverage"]["agents"]["codeQuality"]["status"] == "ok"
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) >= 2  # the batch, then hang.py alone
    assert all(dead(pid) for pid in started)


@pytest.mark.parametrize(("agent_timeout", "analysis_timeout"), [(1.5, 600.0), (600.0, 3.0)])
def test_agent_and_analysis_deadlines_hold_within_a_second(
    make_service: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    agent_timeout: float,
    analysis_timeout: float,
) -> None:
    pids = tmp_path / "sleeper"
    monkeypatch.setitem(agents.AGENTS, "performance", Sleeper(str(pids)))
    repo = build(tmp_path, {"README.md": "x\n"}, {"m.py": "x = 1\n"})
    service = make_service(agent_timeout=agent_timeout, analysis_timeout=analysis_timeout)
    start = time.monotonic()
    report = analyse(service, repo, "comprehensive")
    elapsed = time.monotonic() - start
    assert report["status"] == "partial"
    agent = report["coverage"]["agents"]["performance"]
    assert agent["status"] == "timeout"
    if agent_timeout < analysis_timeout:
        assert agent_timeout <= agent["seconds"] <= agent_timeout + 1.0
    else:  # the analysis deadline counts from its start, clone and profile included
        assert report["timings"]["agents"] < analysis_timeout + 1.0
        assert elapsed < analysis_timeout + 1.0 + report["timings"]["cleanup"] + 1.0
    worker, tool = (int(p) for p in pids.read_text().split())
    assert dead(worker) and dead(tool)
    assert any("performance ran out of time" in r for r in report["summary"]["partialReasons"])
