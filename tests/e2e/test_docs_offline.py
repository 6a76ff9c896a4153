"""`/docs` and `/redoc` render with the network cut off: every asset comes from CodeQual."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, expect

from .conftest import BrowserPage, Server, start_server, stop_server


@pytest.fixture
def bare_server(tmp_path: Path) -> Iterator[Server]:
    process, base = start_server(tmp_path)
    try:
        yield Server(base, tmp_path)
    finally:
        stop_server(process)


def offline(web: BrowserPage, base: str) -> list[str]:
    """Abort every request that leaves the server under test; return what was refused."""
    own = urlsplit(base).netloc
    refused: list[str] = []

    def only_ours(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    web.page.route("**/*", only_ours)
    return refused


def test_swagger_ui_renders_every_route_without_the_network(
    bare_server: Server, web: BrowserPage
) -> None:
    refused = offline(web, bare_server.base)
    web.page.goto(f"{bare_server.base}/docs")
    expect(web.page.locator(".swagger-ui .info .title")).to_contain_text("CodeQual")
    expect(
        web.page.locator(".opblock-summary-path", has_text="/api/analyses").first
    ).to_be_visible()
    assert refused == []
    web.assert_no_errors()


def test_redoc_renders_without_the_network(bare_server: Server, web: BrowserPage) -> None:
    refused = offline(web, bare_server.base)
    web.page.goto(f"{bare_server.base}/redoc")
    expect(web.page.locator("h1", has_text="CodeQual")).to_be_visible()
    assert refused == []
