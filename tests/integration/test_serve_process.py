"""`codequal serve` as a real process: bad configuration, probes, graceful SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from ..helpers import wait_until_ready

CODEQUAL = [sys.executable, "-m", "codequal"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CODEQUAL, "serve", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("CODEQUAL_PORT", "eighty", "a whole number from 1 to 65535"),
        ("CODEQUAL_LOG_LEVEL", "verbose", "one of debug, info, warn, error, critical"),
        ("CODEQUAL_LOG_FORMAT", "xml", "one of json, console, auto"),
        ("CODEQUAL_DATABASE_URL", "not a url at all", "a URL such as"),
    ],
)
def test_invalid_configuration_stops_serve_before_binding_with_exit_2(
    tmp_path: Path, variable: str, value: str, allowed: str
) -> None:
    port = free_port()
    result = (
        run_serve({variable: value, "CODEQUAL_DATA_DIR": str(tmp_path)}, "--port", str(port))
        if variable != "CODEQUAL_PORT"
        else run_serve({variable: value, "CODEQUAL_DATA_DIR": str(tmp_path)})
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0] and allowed in lines[0]
    assert not (tmp_path / "codequal.db").exists()


def test_a_bad_yaml_config_file_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "codequal.yaml"
    config.write_text("port: [1, 2]\n")
    result = run_serve({}, "--config", str(config))
    assert result.returncode == 2
    assert "CODEQUAL_PORT" in result.stderr


def test_serve_answers_probes_and_flushes_logs_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CODEQUAL_DATA_DIR": str(tmp_path), "CODEQUAL_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [*CODEQUAL, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, proc)
        assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "healthy"
        assert httpx.get(f"{base}/no-such-page", timeout=5).status_code == 404
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert b'"action":"codequal stopping"' in stdout
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'codequal.db'}")
    with engine.connect() as conn:
        actions = [r[0] for r in conn.execute(sa.text("SELECT action FROM log_entries"))]
    engine.dispose()
    assert "codequal started" in actions
    assert "http request" in actions  # the 404 was logged with its trace id
    assert actions[-1] == "codequal stopping"  # flushed on shutdown, nothing left behind
