"""`codequal serve` with a Sentry DSN, as a real process, with whichever sentry-sdk is installed.

`make test` runs this file in .venv (sentry-sdk 3) and again in .venv-sentry2 (sentry-sdk 2):
the server must become ready, and an unexpected error must reach the DSN's loopback receiver
as an event built by that SDK.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk

from tests.conftest import TEST_JWT_SECRET, bearer

from .test_serve_process import CODEQUAL, free_port


@pytest.fixture
def envelopes() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback Sentry: the port it listens on and the envelopes it received, decompressed."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.append(body)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def events_in(envelopes: list[bytes]) -> list[dict[str, Any]]:
    found = []
    for body in list(envelopes):
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                found.append(json.loads(payload))
    return found


def test_serve_with_a_dsn_becomes_ready_and_forwards_an_unexpected_error(
    tmp_path: Path, envelopes: tuple[int, list[bytes]]
) -> None:
    sentry_port, received = envelopes
    port = free_port()
    env = {
        **os.environ,
        "CODEQUAL_DATA_DIR": str(tmp_path),
        "CODEQUAL_SENTRY_DSN": f"http://publickey@127.0.0.1:{sentry_port}/1",
        "CODEQUAL_JWT_SECRET": TEST_JWT_SECRET,
        "CODEQUAL_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [*CODEQUAL, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        ready_by = time.monotonic() + 10
        while httpx_status(f"{base}/ready") != 200:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < ready_by, "not ready within 10 s with a Sentry DSN"
            time.sleep(0.1)
        # An unexpected server error: its table vanished under it.
        with sqlite3.connect(tmp_path / "codequal.db") as db:
            db.execute("DROP TABLE silences")
        answer = httpx.get(
            f"{base}/api/monitoring/silences", headers=bearer("monitoring:read"), timeout=10
        )
        assert answer.status_code == 500
        forwarded_by = time.monotonic() + 15
        while not events_in(received):
            assert time.monotonic() < forwarded_by, "no event reached Sentry within 15 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    [event] = events_in(received)
    assert event["exception"]["values"][-1]["type"] == "OperationalError"
    assert event["sdk"]["version"] == sentry_sdk.VERSION  # built by the installed SDK
    assert proc.returncode == 0
    assert b"Traceback" not in stderr


def httpx_status(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.TransportError:
        return 0
