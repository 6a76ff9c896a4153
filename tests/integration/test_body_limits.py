"""Request bodies are bounded before authentication and before parsing, on every route.

The attack seen: an unauthenticated 200 MiB JSON POST to /api/monitoring/silences took the
server from 138 to 729 MiB before its 401. A real `codequal serve` must refuse it with 413
without reading it, declared or chunked, and keep its memory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator

import httpx
import psutil
import pytest

from codequal.api.body_limit import API_BODY_LIMIT, limit_for
from codequal.ingest.limits import LOKI, OTLP, SENTRY_ENVELOPE

from ..helpers import wait_until_ready
from .test_serve_process import CODEQUAL, free_port

MiB = 1024 * 1024
ATTACK = 200 * MiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    env = {**os.environ, "CODEQUAL_DATA_DIR": str(tmp_path_factory.mktemp("limits"))}
    proc = subprocess.Popen(
        [*CODEQUAL, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, proc)
        yield base, psutil.Process(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def chunks(total: int, size: int = MiB) -> Iterator[bytes]:
    piece = b"[" + b"1," * (size // 2 - 1) + b"1"
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


def test_a_declared_200_mib_body_is_refused_before_reading_or_authenticating(
    server: tuple[str, psutil.Process],
) -> None:
    base, process = server
    before = process.memory_info().rss
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{base}/api/monitoring/silences", content=chunks(ATTACK),
                             headers={"Content-Length": str(ATTACK),
                                      "Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 413
    assert answer.json() == {
        "error": "payload too large",
        "detail": "the request body is larger than the 1 MiB this endpoint accepts",
    }
    assert process.memory_info().rss - before < 30 * MiB


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(
    server: tuple[str, psutil.Process],
) -> None:
    base, process = server
    before = process.memory_info().rss
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{base}/api/analyses", content=chunks(ATTACK))
    assert answer.status_code == 413
    assert process.memory_info().rss - before < 30 * MiB


def test_a_body_under_the_limit_still_reaches_authentication(
    server: tuple[str, psutil.Process],
) -> None:
    base, _ = server
    answer = httpx.post(f"{base}/api/monitoring/silences", json={"matchers": []}, timeout=10)
    assert answer.status_code == 401


def test_a_bad_content_length_is_a_400(server: tuple[str, psutil.Process]) -> None:
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /api/analyses HTTP/1.1\r\nHost: x\r\nContent-Length: 1e9\r\n\r\n{}")
        status_line = conn.recv(200).split(b"\r\n")[0]
    assert status_line.split()[1] == b"400"


def test_ingest_routes_keep_the_room_their_formats_need() -> None:
    assert limit_for("/api/42/envelope/") == SENTRY_ENVELOPE.compressed
    assert limit_for("/v1/traces") == OTLP.compressed
    assert limit_for("/loki/api/v1/push") == LOKI.compressed
    assert limit_for("/api/monitoring/silences") == API_BODY_LIMIT
    assert limit_for("/api/analyses") == API_BODY_LIMIT
