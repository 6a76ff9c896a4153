"""Helpers the tests share: a loopback HTTP receiver for the sinks' fakes, and one way to wait.

A fake stands only for a destination we do not run (a Sentry, an OTLP collector, Loki,
Elasticsearch); each test's subclass checks the exact wire format in :meth:`handle`.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

NO_ANSWER = 0  # a status from handle(): close the connection without answering


class LoopbackReceiver:
    """An HTTP server on 127.0.0.1 whose :meth:`handle` decides each POST's answer.

    ``handle(path, headers, body)`` returns ``(status, body, headers)``; ``NO_ANSWER`` makes the
    client wait until it gives up. Start with :meth:`start` (or use it as a context manager).
    """

    content_type = "application/json"

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        return 200, b"{}", {}

    def start(self) -> LoopbackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer, extra = receiver.handle(self.path, dict(self.headers.items()), body)
                if status == NO_ANSWER:
                    return
                self.send_response(status)
                for name, value in {"Content-Type": receiver.content_type, **extra}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def eventually(
    check: Callable[[], Any], within: float = 30.0, what: str = "the condition", every: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy (returned); fail after ``within`` s.

    For state another process or thread changes on its own schedule (a server starting, a
    spool draining); where the test owns the clock, it passes time instead of waiting.
    """
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {within} s")
        time.sleep(every)


def wait_until_ready(base: str, proc: subprocess.Popen[bytes], deadline: float = 30) -> None:
    """Wait for a ``codequal serve`` process to answer 200 on ``/ready``; fail if it exits."""

    def ready() -> bool:
        assert proc.poll() is None, "codequal serve exited early"
        try:
            return httpx.get(f"{base}/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    eventually(ready, deadline, "codequal serve answering 200 on /ready", every=0.1)
