"""Analyses per minute for a small repository in quick mode, and instrumentation's share.

The share is measured with cProfile on the thread that runs the analyses: the time spent
inside telemetry code (our telemetry package, OpenTelemetry, prometheus_client, structlog)
divided by the wall time of the runs. Background writer threads are not on that thread; they
are the price of never blocking it. Target: share < 1 %. Run: python bench/bench_pipeline.py
"""

from __future__ import annotations

import cProfile
import pstats
import subprocess
import tempfile
import time
from pathlib import Path

from codequal.analysis.store import AnalysisRequest
from codequal.config import load_settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.storage.db import open_database

RUNS = 8
INSTRUMENTATION = ("codequal/telemetry/", "opentelemetry/", "prometheus_client/", "structlog/")


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args],
            cwd=repo, check=True, capture_output=True,
        )  # fmt: skip

    (repo / "app.py").write_text("def add(a, b):\n    return a + b\n")
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "base")
    git("checkout", "-qb", "feature")
    (repo / "app.py").write_text(
        "import subprocess\n\ndef run(cmd):\n    return subprocess.run(cmd, shell=True)\n"
    )
    (repo / "util.py").write_text("TOKEN = 'x'\n\ndef mul(a, b):\n    return a * b\n")
    git("add", "-A")
    git("commit", "-qm", "head")
    return repo


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root)
        settings = load_settings(data_dir=root / "data", log_format="json")
        db = open_database(settings.resolved_database_url)
        db.migrate()
        with open("/dev/null", "wb") as devnull:
            telemetry = setup_telemetry(settings, db, console=devnull, bridge_stdlib=False)
            service = build_analysis(settings, db, telemetry)
            request = AnalysisRequest(str(repo), "main", "feature", "quick")
            service.pool.run_one(service.submit(request))  # warm-up: imports, first profile
            profiler = cProfile.Profile()
            start = time.perf_counter()
            profiler.enable()
            for _ in range(RUNS):
                record = service.pool.run_one(service.submit(request))
                assert record is not None and record.status == "completed", record
            profiler.disable()
            wall = time.perf_counter() - start
            telemetry.shutdown(30)
        db.dispose()
    instrumented = instrumentation_seconds(profiler)
    print(f"{'measure':<52}{'value':>14}")
    print(f"{'quick analyses run (small repository)':<52}{RUNS:>14}")
    print(f"{'wall seconds (profiled)':<52}{wall:>14.2f}")
    print(f"{'analyses per minute':<52}{RUNS / wall * 60:>14.1f}")
    print(f"{'seconds inside telemetry code on the calling thread':<52}{instrumented:>14.4f}")
    print(f"{'instrumentation share of wall time (target < 1 %)':<52}{instrumented / wall:>13.2%}")


def instrumentation_seconds(profiler: cProfile.Profile) -> float:
    stats = pstats.Stats(profiler)
    total = 0.0
    for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        if any(part in filename for part in INSTRUMENTATION):
            total += row[2]  # tottime: time in the function itself, not its callees
    return total


if __name__ == "__main__":
    main()
