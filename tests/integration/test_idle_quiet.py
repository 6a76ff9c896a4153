"""Telemetry does not feed itself: an idle server with every sink configured goes quiet.

Every push to Loki, Elasticsearch or an OTLP collector used to log an httpx request line,
which the next push exported: about four pushes a second per sink, for ever. Here a real
`codequal serve` pushes to loopback receivers for each; after its start-up lines, 30 s of
idleness must send nothing at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ..helpers import LoopbackReceiver, eventually, wait_until_ready
from .test_serve_process import CODEQUAL, free_port

IDLE_SECONDS = 30.0


class Receiver(LoopbackReceiver):
    """Accepts anything (Loki answers 204, the others 200) and notes when each push came."""

    def __init__(self) -> None:
        super().__init__()
        self.pushes: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self.pushes.append((time.monotonic(), path))
        if path.startswith("/loki"):
            return 204, b"", {}
        if path.endswith("/_bulk"):
            return 200, b'{"errors": false, "items": []}', {}
        return 200, b"", {"Content-Type": "application/x-protobuf"}

    def since(self, moment: float) -> list[str]:
        with self._lock:
            return [path for at, path in self.pushes if at >= moment]


@pytest.mark.timeout(120)
def test_an_idle_server_with_every_sink_sends_nothing_after_starting(tmp_path: Path) -> None:
    loki, elastic, otlp = Receiver().start(), Receiver().start(), Receiver().start()
    port = free_port()
    env = {
        **os.environ,
        "CODEQUAL_DATA_DIR": str(tmp_path),
        "CODEQUAL_LOKI_URL": loki.url,
        "CODEQUAL_ELASTICSEARCH_URL": elastic.url,
        "CODEQUAL_OTLP_ENDPOINT": otlp.url,
        "CODEQUAL_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [*CODEQUAL, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", proc)
        # The start-up lines arrive first: each log sink gets its batch.
        eventually(lambda: loki.pushes and elastic.pushes and otlp.since(0), 30, "start-up lines")
        settled = time.monotonic() + 5  # the last start-up batches drain
        idle_from = settled
        while time.monotonic() < settled + IDLE_SECONDS:
            time.sleep(1)
        sent = {name: r.since(idle_from) for name, r in
                (("loki", loki), ("elasticsearch", elastic), ("otlp", otlp))}  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        for receiver in (loki, elastic, otlp):
            receiver.stop()
    assert sent == {"loki": [], "elasticsearch": [], "otlp": []}
