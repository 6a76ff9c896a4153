"""Issue 19's repository policy end to end, with loopback URLs only.

Private, link-local and metadata ranges are refused by the address check (see
tests/unit/test_repository_policy.py); here the same refusal is shown on 127.0.0.1, and
what a permitted clone does with a silent remote, a redirect and a host name is shown on
loopback servers. No test sends a packet anywhere else.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from codequal.analysis import repo
from codequal.analysis.policy import Remote
from codequal.api.app import create_app
from codequal.config import load_settings

from ..conftest import TEST_JWT_SECRET, bearer

WRITE = bearer("analyses:write", "monitoring:read")


class Listener:
    """A loopback TCP port that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    silent = Listener()
    yield silent
    silent.close()


def client_for(tmp_path: Path, database_url: str, **settings: Any) -> TestClient:
    app = create_app(
        load_settings(data_dir=tmp_path / "srv", database_url=database_url,
                      jwt_secret=TEST_JWT_SECRET, **settings),
        start_workers=False,
    )  # fmt: skip
    return TestClient(app, headers=WRITE)


def test_a_loopback_url_is_refused_at_submission_without_a_connection(
    tmp_path: Path, database_url: str, listener: Listener
) -> None:
    with client_for(tmp_path, database_url) as client:
        assert client.app.state.codequal.wait_ready(30)  # type: ignore[attr-defined]
        for url in (
            f"https://127.0.0.1:{listener.port}/x.git",
            f"https://localhost:{listener.port}/x.git",
        ):
            answer = client.post(
                "/api/analyses", json={"repositoryUrl": url, "base": "a", "head": "b"}
            )
            assert answer.status_code == 400
            assert "loopback address" in answer.json()["detail"]
        for url in (
            f"http://127.0.0.1:{listener.port}/x.git",
            f"git://127.0.0.1:{listener.port}/x",
        ):
            answer = client.post(
                "/api/analyses", json={"repositoryUrl": url, "base": "a", "head": "b"}
            )
            assert answer.status_code == 400 and "not accepted" in answer.json()["detail"]
        bad_ref = client.post(
            "/api/analyses",
            json={"repositoryUrl": str(tmp_path), "base": "main", "head": "--upload-pack=touch x"},
        )
        assert bad_ref.status_code == 400 and "not a valid git ref" in bad_ref.json()["detail"]
    assert listener.accepted == 0


def test_a_silent_remote_is_rejected_as_unreachable_within_seconds(
    tmp_path: Path, database_url: str, listener: Listener
) -> None:
    settings = {"allow_private_repositories": True, "clone_connect_timeout": 1.0}
    with client_for(tmp_path, database_url, **settings) as client:
        state = client.app.state.codequal  # type: ignore[attr-defined]
        assert state.wait_ready(30)
        url = f"https://127.0.0.1:{listener.port}/x.git"
        submitted = client.post(
            "/api/analyses", json={"repositoryUrl": url, "base": "a", "head": "b"}
        )
        assert submitted.status_code == 202
        start = time.monotonic()
        record = state.analysis.pool.run_one(submitted.json()["id"])
        assert time.monotonic() - start < 5
    assert record.status == "rejected" and record.error_type == "unreachable"
    assert "did not answer within 1 s" in record.error_message
    assert listener.accepted >= 1  # it was reached, and it said nothing


class Redirecting(BaseHTTPRequestHandler):
    target = ""
    hits: list[str] = []

    def do_GET(self) -> None:
        Redirecting.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", Redirecting.target + self.path)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_clone_follows_no_redirect_and_connects_to_the_pinned_address(
    tmp_path: Path, listener: Listener
) -> None:
    front = serve(Redirecting)
    Redirecting.target = f"http://127.0.0.1:{listener.port}"
    Redirecting.hits = []
    port = front.server_address[1]
    try:
        # The name resolves nowhere; the pinned address is the only way git can reach it.
        url = f"http://repo.invalid:{port}/x.git"
        remote = Remote("other", url, "repo.invalid", port, ("127.0.0.1",))
        with pytest.raises(repo.CloneError, match="cannot clone"):
            repo.clone(remote, tmp_path / "clone.git", timeout=20)
    finally:
        front.shutdown()
    assert Redirecting.hits, "git never reached the pinned address"
    assert listener.accepted == 0  # the redirect's target was never contacted
