"""A worker killed with -9 mid-clone or mid-agent: the requeued job completes on restart.

The worker is a real process running the pool against a SQLite file. Mid-clone, a git that
sleeps after cloning leaves a complete ``repo.git`` behind (what made requeued jobs fail with
"destination path already exists"); mid-agent, the agent's own process is orphaned and must
end by itself. The restart is this test process: the stale job is requeued and run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codequal.analysis.store import AnalysisRequest, AnalysisStore
from codequal.config import load_settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.storage.db import open_database
from tests.helpers import eventually

from .conftest import PlantedRepo
from .slow_agents import dead

FAKE_GIT = """#!/bin/sh
for arg in "$@"; do [ "$arg" = clone ] && cloning=1; done
{real} "$@"; status=$?
if [ -n "$cloning" ]; then touch "$CQ_MARK"; sleep 3600; fi
exit $status
"""

WORKER = """
import sys
from codequal.analysis import agents
from codequal.config import load_settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.storage.db import open_database
from tests.integration.slow_agents import Sleeper

data_dir, analysis_id, hang_agent, mark = sys.argv[1:]
if hang_agent == "yes":
    agents.AGENTS["security"] = Sleeper(mark)
settings = load_settings(data_dir=data_dir, log_format="json")
db = open_database(settings.resolved_database_url)
telemetry = setup_telemetry(settings, db, bridge_stdlib=False)
build_analysis(settings, db, telemetry).pool.run_one(analysis_id)
"""


@pytest.mark.parametrize("where", ["clone", "agent"])
def test_a_job_killed_mid_step_completes_after_a_restart(
    tmp_path: Path, planted_repo: PlantedRepo, where: str
) -> None:
    data_dir = tmp_path / "data"
    settings = load_settings(data_dir=data_dir, log_format="json")
    db = open_database(settings.resolved_database_url)
    db.migrate()
    store = AnalysisStore(db)
    analysis_id = store.create(
        AnalysisRequest(str(planted_repo.path), "main", "feature", "quick"), now=1_000.0
    )
    mark = tmp_path / "mark"
    env = {**os.environ, "CQ_MARK": str(mark), "PYTHONPATH": os.pathsep.join(sys.path)}
    if where == "clone":
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        fake = bin_dir / "git"
        fake.write_text(
            FAKE_GIT.format(real=subprocess.check_output(["which", "git"], text=True).strip())
        )
        fake.chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    worker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WORKER), str(data_dir), analysis_id,
         "yes" if where == "agent" else "no", str(mark)],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        eventually(mark.exists, 60, f"the worker to reach the {where}")
        assert (data_dir / "deepwiki" / analysis_id / "repo.git").is_dir()
        worker.kill()  # SIGKILL: no cleanup of any kind
        worker.wait()
        if where == "agent":
            agent_process, tool = (int(p) for p in mark.read_text().split())
            # The orphaned agent notices its supervisor is gone and ends with its tool.
            eventually(lambda: dead(agent_process) and dead(tool), 10, "the orphaned agent to end")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)  # the fake git's sleep, if any

    assert store.get(analysis_id).status == "running"  # type: ignore[union-attr]
    assert store.requeue_stale(now=10**10, stale_after=30.0) == 1
    telemetry = setup_telemetry(settings, db, bridge_stdlib=False)
    try:
        record = build_analysis(settings, db, telemetry).pool.run_one(analysis_id)
    finally:
        telemetry.shutdown(10)
        db.dispose()
    assert record is not None
    assert (record.status, record.attempts) == ("completed", 2), record.error_message
    assert any(f["rule"] == "B602" for f in record.findings)
