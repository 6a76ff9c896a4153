"""A real `codequal serve` process with seeded analyses, and a real headless Chromium.

Chromium is Debian's /usr/bin/chromium driven by Playwright's Python package; Playwright never
downloads a browser here. Without it the tests skip on a developer machine and fail in CI
(CODEQUAL_REQUIRE_SERVICES=1), where it is installed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from codequal.security import mint_token
from tests.helpers import eventually

from ..conftest import REQUIRE_SERVICES

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SECRET = "codequal-e2e-secret-" + "e" * 32
# A directory name that is also markup: the page must show it as text, never parse it.
XSS_NAME = "repo-<img src=x onerror=alert(1)>"
READY_SECONDS = 30.0
ANALYSIS_SECONDS = 90.0


@dataclass(frozen=True)
class Server:
    """A running server: its base URL and how to mint tokens it accepts."""

    base: str
    repo: Path
    analyses: dict[str, str] = field(default_factory=dict)  # "completed" / "rejected" -> id
    data_dir: Path | None = None  # where its SQLite database lives

    def token(self, *scopes: str) -> str:
        return mint_token(SECRET, "tester", list(scopes), 3600)

    def get(self, path: str, *scopes: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token(*scopes)}"} if scopes else {}
        response = httpx.get(self.base + path, headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()


# ---- the git repository the analyses run on -----------------------------------------------------


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def make_repo(root: Path) -> Path:
    """main: a small module; feature: one more function. Enough for a quick analysis."""
    repo = root / XSS_NAME
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "app.py").write_text(
        "def add(a: int, b: int) -> int:\n    return a + b\n\n\n"
        "def sub(a: int, b: int) -> int:\n    return a - b\n"
    )
    git(repo, "commit", "-q", "-am", "add sub")
    git(repo, "checkout", "-q", "main")
    return repo


# ---- the server process -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_server(data_dir: Path, **env: str) -> tuple[_Process, str]:
    port = free_port()
    # Only the variables set here: a developer's CODEQUAL_* settings must not leak in.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEQUAL_")}
    # Never OTLP/gRPC's 4317: another server (or test) on this machine may hold it.
    clean |= {"CODEQUAL_DATA_DIR": str(data_dir), "CODEQUAL_JWT_SECRET": SECRET,
              "CODEQUAL_OTLP_GRPC_PORT": "0"} | env  # fmt: skip
    log = data_dir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codequal", "serve", "--port", str(port)],
            env=clean,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process = _Process(proc, log)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, f"server exited early:\n{process.output()}"
        try:
            return httpx.get(f"{base}/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(ready, READY_SECONDS, "/ready", every=0.1)
    except BaseException:
        stop_server(process)
        raise
    page = httpx.get(base + "/", timeout=5)
    if page.status_code == 404:
        stop_server(process)
        pytest.fail("the server does not serve the dashboard: create_app must call install_web")
    return process, base


def stop_server(process: _Process) -> None:
    if process.proc.poll() is None:
        process.proc.send_signal(signal.SIGTERM)
        try:
            process.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait()


def submit(server: Server, head: str) -> str:
    response = httpx.post(
        server.base + "/api/analyses",
        json={"repositoryUrl": str(server.repo), "base": "main", "head": head, "mode": "quick"},
        headers={"Authorization": f"Bearer {server.token('analyses:write')}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_finished(server: Server, analysis_id: str) -> str:
    def finished() -> str | None:
        status = server.get(f"/api/analyses/{analysis_id}", "monitoring:read")["status"]
        return status if status in {"completed", "partial", "failed", "rejected"} else None

    status: str = eventually(
        finished, ANALYSIS_SECONDS, f"analysis {analysis_id} to finish", every=0.1
    )
    # Spans and logs are exported in batches; the page links to both, so wait for them too.
    eventually(
        lambda: _readable(server, f"/api/monitoring/analyses/{analysis_id}/trace"),
        ANALYSIS_SECONDS,
        "the analysis trace",
        every=0.1,
    )
    return status


def _readable(server: Server, path: str) -> bool:
    headers = {"Authorization": f"Bearer {server.token('monitoring:read')}"}
    return httpx.get(server.base + path, headers=headers, timeout=10).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with one completed and one rejected analysis (a ref that does not exist),
    both with traces and logs."""
    root = tmp_path_factory.mktemp("e2e")
    data_dir = root / "data"
    data_dir.mkdir()
    process, base = start_server(data_dir, CODEQUAL_REPOSITORY_ROOTS=str(root))
    try:
        seeding = Server(base, make_repo(root))
        analyses = {}
        for expected, head in (("completed", "feature"), ("rejected", "no-such-ref")):
            analysis_id = submit(seeding, head)
            assert wait_finished(seeding, analysis_id) == expected, process.output()
            analyses[expected] = analysis_id
        yield Server(base, seeding.repo, analyses, data_dir)
    finally:
        stop_server(process)


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[Server]:
    """A server with CODEQUAL_PUBLIC_DASHBOARD=false and no analyses."""
    process, base = start_server(tmp_path, CODEQUAL_PUBLIC_DASHBOARD="false")
    try:
        yield Server(base, tmp_path)
    finally:
        stop_server(process)


# ---- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing; install Debian's chromium package"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )


@dataclass
class BrowserPage:
    """A fresh page (own sessionStorage) and what its console reported as errors."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def assert_no_errors(self, allowed: str | None = None) -> None:
        """No console error or uncaught exception, except messages containing ``allowed``."""
        unexpected = [e for e in self.errors if allowed is None or allowed not in e]
        assert unexpected == [], unexpected


@pytest.fixture
def web(browser: Browser) -> Iterator[BrowserPage]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    watched = BrowserPage(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"pageerror: {exc}"))
    try:
        yield watched
    finally:
        context.close()
