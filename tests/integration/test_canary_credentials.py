"""The canary attack: credentials in every URL a real server is given, then looked for everywhere.

A `codequal serve` process gets a canary password in its Loki, Elasticsearch, OTLP and
Alertmanager URLs, and an analysis of `https://alice:<canary>@.../x.git` is submitted over the
API. After the analysis ended and telemetry was flushed, the canary must not appear in the
server's stdout or stderr, in any byte of its data dir (the database, its WAL, the spools), in
any payload the sinks exported, or in the answers of the API, `/metrics` and `config show`.
The receivers are loopback; the repository host is a loopback port that accepts and says
nothing (the clone is refused as unreachable, which is all this test needs).
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from ..conftest import TEST_JWT_SECRET, bearer
from ..helpers import LoopbackReceiver, eventually, wait_until_ready
from .test_serve_process import CODEQUAL, free_port

CANARY = "C4naryPw77"
ALL = bearer("monitoring:read", "monitoring:admin", "analyses:write")


class Receiver(LoopbackReceiver):
    """Keeps every body it is sent, decompressed, to be searched for the canary."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()

    def handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with self._lock:
            self.bodies.append(body)
        if path.endswith("/_bulk"):
            return 200, b'{"errors": false, "items": []}', {}
        return (204 if path.startswith("/loki") else 200), b"", {}


def silent_port() -> tuple[socket.socket, int]:
    sock = socket.create_server(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@pytest.mark.timeout(180)
def test_a_canary_password_is_nowhere_the_server_writes_or_answers(tmp_path: Path) -> None:
    loki, elastic, otlp, alertmanager = (Receiver().start() for _ in range(4))
    repository_host, repository_port = silent_port()
    data_dir = tmp_path / "data"
    port = free_port()
    env = {
        **os.environ,
        "CODEQUAL_DATA_DIR": str(data_dir),
        "CODEQUAL_JWT_SECRET": TEST_JWT_SECRET,
        "CODEQUAL_LOG_FORMAT": "json",
        "CODEQUAL_LOKI_URL": f"http://loki:{CANARY}@127.0.0.1:{loki.port}",
        "CODEQUAL_ELASTICSEARCH_URL": f"http://elastic:{CANARY}@127.0.0.1:{elastic.port}",
        "CODEQUAL_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp.port}/?token={CANARY}",
        "CODEQUAL_ALERTMANAGER_URL": f"http://am:{CANARY}@127.0.0.1:{alertmanager.port}",
        "CODEQUAL_ALLOW_PRIVATE_REPOSITORIES": "true",
        "CODEQUAL_CLONE_CONNECT_TIMEOUT": "1s",
    }
    server = subprocess.Popen(
        [*CODEQUAL, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    answers: list[str] = []
    try:
        wait_until_ready(base, server)
        url = f"https://alice:{CANARY}@127.0.0.1:{repository_port}/team/x.git"
        with httpx.Client(base_url=base, headers=ALL, timeout=10) as api:
            submitted = api.post("/api/analyses", json={"repositoryUrl": url, "base": "main",
                                                        "head": "feature"})  # fmt: skip
            assert submitted.status_code == 202, submitted.text
            analysis = f"/api/analyses/{submitted.json()['id']}"
            eventually(lambda: api.get(analysis).json()["status"] in ("rejected", "failed"), 60,
                       "the analysis to end")  # fmt: skip
            time.sleep(1.5)  # the log and span batches of its end reach the sinks
            for path in (analysis, "/api/analyses", "/api/monitoring/logs?limit=1000",
                         "/api/monitoring/dashboard", "/api/monitoring/costs",
                         "/api/monitoring/errors", "/metrics"):  # fmt: skip
                answers.append(api.get(path).text)
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=60)
        repository_host.close()
        for receiver in (loki, elastic, otlp, alertmanager):
            receiver.stop()
    config = subprocess.run([*CODEQUAL, "config", "show", "--json"], env=env, capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    assert loki.bodies and elastic.bodies and otlp.bodies, "the sinks exported nothing"
    found = {
        "stdout": CANARY.encode() in stdout,
        "stderr": CANARY.encode() in stderr,
        "API answers": any(CANARY in text for text in answers),
        "config show": CANARY in config,
        "Loki pushes": any(CANARY.encode() in b for b in loki.bodies),
        "Elasticsearch bulks": any(CANARY.encode() in b for b in elastic.bodies),
        "OTLP exports": any(CANARY.encode() in b for b in otlp.bodies),
        "Alertmanager posts": any(CANARY.encode() in b for b in alertmanager.bodies),
        "data dir": [
            str(p) for p in data_dir.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()
        ],
    }
    assert not any(found.values()), {where: hit for where, hit in found.items() if hit}
    assert b"https://***@127.0.0.1" in stdout  # the analysis was logged, with the URL redacted
