"""Start-up that cannot succeed ends with one sentence on stderr and a non-zero exit, fast.

Each case is what an operator meets: a damaged database file, a data dir that cannot be
written, a port another process holds, a database server that never comes up, a part that
refuses to start. `codequal serve` runs as a real process; the in-process cases check that
`/ready` and `/health` then agree on why.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from codequal.api.app import create_app
from codequal.config import load_settings
from codequal.runtime import process

from .test_serve_process import CODEQUAL, free_port

WITHIN = 10.0  # seconds the issue allows before the sentence and the exit


def serve(data_dir: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    result = subprocess.run(
        [*CODEQUAL, "serve", "--data-dir", str(data_dir), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - began


def one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("codequal: start-up failed")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def test_a_damaged_database_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "codequal.db").write_bytes(b"this is no SQLite file, just some bytes\n" * 20)
    result, took = serve(tmp_path, "--port", str(free_port()))
    assert result.returncode == 1 and took < WITHIN
    sentence = one_sentence(result.stderr)
    assert str(tmp_path / "codequal.db") in sentence
    assert "not a SQLite database" in sentence and "restore it from a backup" in sentence


def test_an_unwritable_data_dir_is_refused_before_anything_starts(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the data dir cannot live under a file")
    result, took = serve(blocker / "data", "--port", str(free_port()))
    assert result.returncode == 1 and took < WITHIN
    sentence = one_sentence(result.stderr)
    assert f"the data dir {blocker / 'data'} is not writable" in sentence
    assert "--data-dir" in sentence


def test_a_port_in_use_is_one_sentence_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result, took = serve(tmp_path, "--port", str(port))
    assert result.returncode == 1 and took < WITHIN
    sentence = one_sentence(result.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in sentence and "--port" in sentence


def test_an_unreachable_database_is_retried_saying_why_then_given_up(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://codequal:hunter2@127.0.0.1:{free_port()}/none"
    result, took = serve(
        tmp_path, "--port", str(free_port()), CODEQUAL_DATABASE_URL=url,
        CODEQUAL_STARTUP_TIMEOUT="1s",
    )  # fmt: skip
    assert result.returncode == 1 and took < WITHIN
    retries = [line for line in result.stderr.splitlines() if "retrying in" in line]
    assert retries and all("Connection refused" in line for line in retries)
    sentence = one_sentence(result.stderr)
    assert "was not reachable for 1 s" in sentence and "CODEQUAL_STARTUP_TIMEOUT" in sentence
    assert "hunter2" not in result.stderr


@pytest.fixture
def refusing_telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A dependency that refuses its options, as sentry-sdk 3 refused include_local_variables."""

    def refuse(*_args: object, **_kw: object) -> None:
        raise TypeError("Unknown option 'include_local_variables'")

    monkeypatch.setattr(process, "setup_telemetry", refuse)
    yield


def test_a_part_that_refuses_to_start_is_named_and_ready_and_health_agree(
    tmp_path: Path, refusing_telemetry: None
) -> None:
    heard: list[str] = []
    app = create_app(load_settings(data_dir=tmp_path), on_startup_failure=heard.append)
    with TestClient(app) as client:
        runtime = app.state.codequal
        deadline = time.monotonic() + WITHIN
        while not heard:
            assert time.monotonic() < deadline, "start-up did not give up"
            time.sleep(0.05)
        ready = client.get("/ready")
        health = client.get("/health")
    assert heard[0].startswith("telemetry could not start (TypeError: Unknown option")
    assert runtime.failed and not runtime.is_ready()
    assert ready.status_code == 503 and heard[0] in ready.json()["detail"]
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    assert health.json()["checks"]["startup"]["status"] == "error"
    assert heard[0] in health.json()["checks"]["startup"]["message"]


@pytest.mark.parametrize(
    "command",
    [["analyze", ".", "--base", "HEAD", "--head", "HEAD"], ["costs"], ["keys", "list"],
     ["slo", "status"]],
)  # fmt: skip
def test_cli_commands_name_a_damaged_database_without_a_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "codequal.db").write_bytes(b"no database here\n" * 20)
    result = subprocess.run(
        [*CODEQUAL, *command, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"codequal: cannot use the database: {tmp_path / 'codequal.db'} is not a SQLite database "
        "(damaged, or another kind of file): move it aside to start with an empty database, "
        "or restore it from a backup."
    )
