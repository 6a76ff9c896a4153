"""Forwarding to Sentry through the real sentry-sdk, received by an HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from codequal.telemetry.errors import FILTERED, ErrorTracker


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Collector:
    port: int
    requests: list[Request] = field(default_factory=list)

    def envelope_items(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(item header, item payload) pairs of every envelope received."""
        items = []
        for request in self.requests:
            lines = _decode(request).split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                items.append((json.loads(header), json.loads(payload)))
        return items


def _decode(request: Request) -> bytes:
    encoding = request.headers.get("Content-Encoding", "")
    if encoding == "gzip":
        return gzip.decompress(request.body)
    if encoding == "br":
        brotli = pytest.importorskip("brotli")
        return bytes(brotli.decompress(request.body))
    return request.body


@pytest.fixture
def collector() -> Iterator[Collector]:
    received: list[Request] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(Request(self.path, dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Collector(server.server_address[1], received)
    finally:
        server.shutdown()
        server.server_close()


class PaymentDeclined(Exception):
    pass


def _charge(gateway_url: str) -> None:
    raise PaymentDeclined(f"charge failed at {gateway_url}")


def test_errors_reach_sentry_with_type_and_fingerprint_but_without_secrets(
    collector: Collector,
) -> None:
    secret = "hunter2" + "-XyZ"
    tracker = ErrorTracker(
        None,
        service="billing",
        environment="ci",
        release="9.9.9",
        sentry_dsn=f"http://publickey@127.0.0.1:{collector.port}/1",
    )
    try:
        _charge(f"https://shop:{secret}@pay.example.com/v1/charge")
    except PaymentDeclined as exc:
        event_id = tracker.capture_exception(exc, {"password": secret, "order": 17})
    assert tracker.flush(10)
    tracker.shutdown(5)

    events = [
        payload for header, payload in collector.envelope_items() if header["type"] == "event"
    ]
    assert len(events) == 1
    [event] = events
    assert collector.requests[0].path == "/api/1/envelope/"
    assert "sentry_key=publickey" in collector.requests[0].headers["X-Sentry-Auth"]
    assert event["event_id"] == event_id
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "PaymentDeclined"
    assert (
        exception["value"] == f"charge failed at https://shop:{FILTERED}@pay.example.com/v1/charge"
    )
    assert (event["environment"], event["release"]) == ("ci", "9.9.9")
    assert event["tags"]["service"] == "billing"
    assert event["contexts"]["codequal"]["password"] == FILTERED
    assert event["contexts"]["codequal"]["order"] == 17
    assert len(event["fingerprint"]) == 1
    frames = exception["stacktrace"]["frames"]
    assert frames and not [f for f in frames if "vars" in f]  # locals may hide any secret
    for request in collector.requests:
        assert secret.encode() not in _decode(request)


def test_an_invalid_dsn_is_rejected_with_the_expected_format() -> None:
    with pytest.raises(ValueError, match=r"https://<public key>@<host>/<project id>"):
        ErrorTracker(None, service="s", environment="e", sentry_dsn="not a dsn")
