"""Test helpers for the notifier: alerts, a capturing HTTP server, a scripted channel."""

from __future__ import annotations

import json
import queue
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from codequal.alerting.channels.base import Notification
from codequal.alerting.model import Alert, AlertStatus
from codequal.exceptions import DeliveryError

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z: every test's clock starts here


def alert(
    name: str = "HighFailureRate",
    severity: str = "critical",
    status: AlertStatus = "firing",
    *,
    at: float = T0,
    resolved_at: float | None = None,
    **labels: str,
) -> Alert:
    """An alert with the annotations every shipped rule has."""
    return Alert(
        labels={"alertname": name, "severity": severity, **labels},
        annotations={
            "summary": f"{name} summary",
            "description": f"{name} description",
            "runbook_url": f"https://runbooks.example/{name}",
        },
        status=status,
        active_at=at - 60,
        fired_at=at if status != "pending" else None,
        resolved_at=resolved_at,
        value=0.25,
        generator_url=f"http://codequal.example/graph?alert={name}",
    )


def resolved(a: Alert, at: float) -> Alert:
    from dataclasses import replace

    return replace(a, status="resolved", resolved_at=at)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CaptureServer:
    """A loopback HTTP server that records each request and answers from a script."""

    url: str
    requests: queue.Queue[Captured]
    script: list[tuple[int, bytes]] = field(default_factory=list)  # consumed in order

    def next(self, timeout: float = 10.0) -> Captured:
        return self.requests.get(timeout=timeout)

    def all(self) -> list[Captured]:
        out = []
        while not self.requests.empty():
            out.append(self.requests.get_nowait())
        return out


@contextmanager
def capture_server(script: Sequence[tuple[int, bytes]] = ()) -> Iterator[CaptureServer]:
    """Answer each request with the next (status, body) of ``script``, then 200 ``ok``."""
    received: queue.Queue[Captured] = queue.Queue()
    server_state = CaptureServer("", received, list(script))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            received.put(Captured("POST", self.path, headers, body))
            with lock:
                status, answer = server_state.script.pop(0) if server_state.script else (200, b"ok")
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()


Step = Literal["ok", "transient", "permanent", "crash"]


class ScriptedChannel:
    """A Channel whose deliveries succeed or fail as scripted; records what it was given."""

    def __init__(self, name: str, script: Sequence[Step] = (), configured: bool = True) -> None:
        self.name = name
        self.script = list(script)
        self.sent: list[Notification] = []
        self.calls = 0
        self._configured = configured

    @property
    def configured(self) -> bool:
        return self._configured

    @property
    def disabled_reason(self) -> str:
        return "" if self._configured else f"CODEQUAL_{self.name.upper()}_URL is not set"

    def notify(self, notification: Notification) -> None:
        self.calls += 1
        step = self.script.pop(0) if self.script else "ok"
        if step == "transient":
            raise DeliveryError("endpoint answered HTTP 503")
        if step == "permanent":
            raise DeliveryError("endpoint answered HTTP 404: no_service", permanent=True)
        if step == "crash":
            raise RuntimeError("bug in channel")
        self.sent.append(notification)
