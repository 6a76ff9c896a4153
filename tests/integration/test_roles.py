"""``codequal serve --role api`` and ``--role worker`` (``CODEQUAL_ROLE``) on one PostgreSQL: the
API replica takes the analyses and never leads; the worker replica runs them, leads, and serves
only probes and /metrics."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..conftest import TEST_JWT_SECRET, bearer
from ..helpers import eventually, wait_until_ready
from .conftest import PlantedRepo
from .test_serve_process import free_port

pytestmark = pytest.mark.postgres
ADMIN = bearer("monitoring:read", "analyses:write")


@contextlib.contextmanager
def serve(tmp: Path, name: str, database_url: str, *args: str, **env: str) -> Iterator[str]:
    port = free_port()
    environment = {
        **os.environ,
        "CODEQUAL_DATABASE_URL": database_url,
        "CODEQUAL_DATA_DIR": str(tmp / name),
        "CODEQUAL_PORT": str(port),
        "CODEQUAL_HOST": "127.0.0.1",
        "CODEQUAL_INSTANCE": name,
        "CODEQUAL_JWT_SECRET": TEST_JWT_SECRET,
        "CODEQUAL_LOG_LEVEL": "warn",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "codequal", "serve", *args],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / f"{name}.stderr").open("wb"),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, proc, deadline=60)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.timeout(240)
def test_api_and_worker_roles_scale_apart_on_one_database(
    tmp_path: Path, pg_schema_url: str, planted_repo: PlantedRepo
) -> None:
    with (
        serve(tmp_path, "api-1", pg_schema_url, "--role", "api") as api,
        serve(tmp_path, "worker-1", pg_schema_url, CODEQUAL_ROLE="worker") as worker,
    ):
        # The worker serves probes and metrics, not the API; it leads.
        assert httpx.get(f"{worker}/metrics", timeout=10).status_code == 200
        assert httpx.get(f"{worker}/api/analyses", headers=ADMIN, timeout=10).status_code == 404
        eventually(lambda: httpx.get(f"{worker}/health").json()["replica"]["leader"], 20)
        # The API replica takes the analysis; only the worker runs it.
        body = {"repositoryUrl": f"file://{planted_repo.path}", "base": "main", "head": "feature"}
        submitted = httpx.post(f"{api}/api/analyses", json={**body, "mode": "quick"}, headers=ADMIN)
        analysis = submitted.raise_for_status().json()["id"]

        def finished() -> str | None:
            answer = httpx.get(f"{api}/api/analyses/{analysis}", headers=ADMIN).json()
            return answer["status"] if answer["status"] in ("completed", "failed") else None

        assert eventually(finished, 180, "the worker ran the analysis") == "completed"
        assert httpx.get(f"{api}/health").json()["replica"]["leader"] is False
        started = _metric(worker, "codequal_analysis_started_total")
        assert (started, _metric(api, "codequal_analysis_started_total")) == (1.0, 0.0)


def _metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


def test_an_unknown_role_stops_the_server_with_the_variable_named(tmp_path: Path) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "codequal", "serve"],
        env={**os.environ, "CODEQUAL_ROLE": "scheduler", "CODEQUAL_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 2
    assert "CODEQUAL_ROLE" in answer.stderr and "all, api, worker" in answer.stderr
