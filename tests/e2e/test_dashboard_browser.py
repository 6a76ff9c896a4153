"""The live dashboard in a real headless Chromium against a real `codequal serve` process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from codequal.api.app import create_app
from codequal.api.web import install_web
from codequal.config import load_settings

from .conftest import SECRET, XSS_NAME, BrowserPage, Server

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN_KEY = "codequal.dashboard.token"


NO_VALUE = "\u2013"  # the en dash the page shows for a missing value


# The page's formatting, mirrored so the DOM text can be compared with the API's numbers.
def percent(ratio: float | None) -> str:
    return NO_VALUE if ratio is None else f"{ratio * 100:.1f} %"


def human_bytes(count: int) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    value, unit = float(count), 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{count} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NO_VALUE
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {round(seconds % 60)} s"


def open_dashboard(web: BrowserPage, server: Server, query: str = "") -> Page:
    """Load the page and wait for its first successful refresh."""
    web.page.goto(f"{server.base}/{query}")
    # Locator assertions, not wait_for_function: its polling evals a string, which the page's
    # Content-Security-Policy (rightly) refuses.
    expect(web.page.locator("#last-updated")).to_have_attribute("datetime", re.compile(r"\d"))
    return web.page


def unlock(page: Page, token: str) -> None:
    page.fill("#token", token)
    page.click("#token-form button[type=submit]")


def text(page: Page, element_id: str) -> str:
    return page.locator(f"#{element_id}").inner_text().strip()


def web_app(tmp_path: Path) -> FastAPI:
    """The app as `codequal serve` builds it, with the page installed if not already wired."""
    settings = load_settings(data_dir=tmp_path, jwt_secret=SECRET)
    app = create_app(settings, start_workers=False)
    if not any(getattr(route, "path", None) == "/" for route in app.routes):
        install_web(app)
    return app


def test_the_page_and_its_assets_are_served_with_a_self_only_policy(tmp_path: Path) -> None:
    with TestClient(web_app(tmp_path)) as client:
        for path in ("/", "/dashboard"):
            page = client.get(path)
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy
            assert page.headers["cache-control"] == "no-cache"
            # Every script is a file: the policy would block an inline one anyway.
            assert re.findall(r"<script(?![^>]*\ssrc=)", page.text) == []
            assert "__VERSION__" not in page.text
        asset = client.get("/static/dashboard.js")
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
        assert "max-age" in asset.headers["cache-control"] and asset.headers["etag"]
        assert asset.headers["content-security-policy"] == policy
        cached = client.get(
            "/static/dashboard.js", headers={"If-None-Match": asset.headers["etag"]}
        )
        assert cached.status_code == 304
        assert client.get("/static/uPlot.LICENSE").status_code == 200
        assert client.get("/static/no-such-file.js").status_code == 404
        assert not {"/", "/dashboard"} & set(client.get("/openapi.json").json()["paths"])


def test_the_page_loads_without_console_errors_and_shows_the_public_numbers(
    server: Server, web: BrowserPage
) -> None:
    page = open_dashboard(web, server)
    body = server.get("/api/monitoring/public/dashboard")
    assert text(page, "overall-status") == body["status"]
    assert text(page, "active-count") == str(body["activeAnalyses"])
    for prefix, window in (("hour", "lastHour"), ("day", "lastDay")):
        summary = body["analyses"][window]
        assert text(page, f"{prefix}-total") == str(summary["total"])
        assert text(page, f"{prefix}-success") == percent(summary["successRate"])
        assert text(page, f"{prefix}-failed") == str(summary["failed"])
    assert body["analyses"]["lastHour"]["total"] == 2  # the seeded pair, so not vacuous
    p95 = {
        row.locator("th").inner_text(): row.locator("td").inner_text()
        for row in page.locator("#p95-table tr").all()
    }
    assert p95 == {mode: duration(v) for mode, v in body["p95DurationByMode"].items()}
    disk = body["deepwiki"]
    assert text(page, "disk-total") == human_bytes(disk["totalBytes"])
    for shown_id, key in (("disk-used", "usedBytes"), ("disk-available", "availableBytes")):
        value, unit = text(page, shown_id).split()
        expected_value, expected_unit = human_bytes(disk[key]).split()
        assert unit == expected_unit and abs(float(value) - float(expected_value)) <= 0.2, shown_id
    assert text(page, "disk-status") == disk["diskStatus"]
    shown = float(text(page, "disk-percent").split()[0])
    assert abs(shown - disk["diskUsageRatio"] * 100) < 0.5  # the disk is live; allow drift
    expect(page.locator("#disk-fill")).to_have_class(re.compile(f"disk-{disk['diskStatus']}"))
    expect(page.locator("#view-mode")).to_have_text("public view")
    expect(page.locator("#private")).to_be_hidden()
    assert page.locator("#charts .uplot").count() == 3
    web.assert_no_errors()


def test_a_valid_token_unlocks_failures_traces_and_logs(server: Server, web: BrowserPage) -> None:
    page = open_dashboard(web, server)
    token = server.token("monitoring:read")
    unlock(page, token)
    expect(page.locator("#view-mode")).to_have_text("full view (token)")
    failure = page.locator("#failures-table tr").first
    expect(failure).to_contain_text("unknown_ref")
    # The repository path is markup-shaped; it must arrive as text, never as an element.
    expect(failure).to_contain_text(XSS_NAME)
    assert page.locator("#content img").count() == 0
    assert token not in page.url
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == token
    assert page.input_value("#token") == ""

    failure.get_by_role("link", name="logs").click()
    expect(page.locator("#detail table.logs")).to_contain_text("analysis started")
    failure.get_by_role("link", name="trace").click()
    expect(page.locator("#detail-title")).to_contain_text(server.analyses["rejected"])
    expect(page.locator("#detail .span-tree .span-name").first).to_have_text("analyze-pr")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)
    web.assert_no_errors()


@pytest.mark.parametrize(
    ("kind", "status", "explanation"),
    [("malformed", 401, "401 Unauthorised"), ("wrong-scope", 403, "403 Forbidden")],
)
def test_a_rejected_token_is_explained_and_the_public_view_stays(
    server: Server, web: BrowserPage, kind: str, status: int, explanation: str
) -> None:
    page = open_dashboard(web, server)
    unlock(page, "not-a-jwt" if kind == "malformed" else server.token("ingest:write"))
    expect(page.locator("#auth-notice")).to_contain_text(explanation)
    expect(page.locator("#auth-notice")).to_contain_text("monitoring:read")
    expect(page.locator("#view-mode")).to_have_text("public view")
    expect(page.locator("#hour-total")).to_have_text("2")
    expect(page.locator("#private")).to_be_hidden()
    # Forgotten, so later refreshes do not spend the server's failed-authentication budget.
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    # Chromium itself logs the refused request; nothing else may reach the console.
    web.assert_no_errors(allowed=f"the server responded with a status of {status}")


def test_the_page_refreshes_itself_at_the_interval_from_the_url(
    server: Server, web: BrowserPage
) -> None:
    page = open_dashboard(web, server, "?refresh=1")
    assert page.input_value("#refresh") == "2"  # clamped to the 2 s minimum
    first = text(page, "last-updated")
    expect(page.locator("#last-updated")).not_to_have_text(first, timeout=10_000)
    web.assert_no_errors()


def test_a_failed_refresh_marks_the_figures_stale_until_one_succeeds(
    server: Server, web: BrowserPage
) -> None:
    page = open_dashboard(web, server, "?refresh=2")
    page.route("**/api/monitoring/public/dashboard*", lambda route: route.abort())
    banner = page.locator("#stale-banner")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text("stale")
    expect(page.locator("#content")).to_have_class(re.compile("stale"))
    expect(page.locator("#hour-total")).to_have_text("2")  # the old figures stay, marked
    page.unroute("**/api/monitoring/public/dashboard*")
    expect(banner).to_be_hidden(timeout=10_000)
    expect(page.locator("#content")).not_to_have_class(re.compile("stale"))
    web.assert_no_errors(allowed="net::ERR_FAILED")


def test_a_hidden_tab_stops_polling_and_refreshes_when_shown(
    server: Server, web: BrowserPage
) -> None:
    web.page.clock.install()
    page = open_dashboard(web, server, "?refresh=2")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/dashboard?" in r.url else None)
    set_hidden(page, hidden=True)
    page.clock.run_for(30_000)  # fifteen intervals: a running timer would have fired
    assert requests == []
    with page.expect_request(lambda r: "/api/monitoring/public/dashboard?" in r.url):
        set_hidden(page, hidden=False)
    web.assert_no_errors()


def set_hidden(page: Page, *, hidden: bool) -> None:
    """What the browser does when the tab goes to the background (or comes back)."""
    page.evaluate(
        """hidden => {
            Object.defineProperty(document, "hidden", {get: () => hidden, configurable: true});
            Object.defineProperty(document, "visibilityState",
                {get: () => (hidden ? "hidden" : "visible"), configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def test_the_range_selector_reloads_the_charts_for_that_range(
    server: Server, web: BrowserPage
) -> None:
    page = open_dashboard(web, server)
    charts = page.locator("#charts")
    with page.expect_request(lambda r: "/api/monitoring/public/dashboard?range=6h" in r.url):
        page.select_option("#range", "6h")
    expect(charts).to_have_attribute("data-range", "6h")
    start, end = (float(charts.get_attribute(a) or "nan") for a in ("data-start", "data-end"))
    assert end - start == pytest.approx(6 * 3600)
    expect(page.locator(".range-label").first).to_have_text("(last 6 h)")
    assert "range=6h" in page.url
    assert page.locator("#charts .uplot").count() == 3
    web.assert_no_errors()


def test_without_a_public_dashboard_the_page_says_so_and_asks_for_a_token(
    private_server: Server, web: BrowserPage
) -> None:
    page = web.page
    page.goto(private_server.base + "/")
    expect(page.locator("#auth-notice")).to_contain_text("public dashboard is turned off")
    expect(page.locator("#content")).to_be_hidden()
    expect(page.locator("#token")).to_be_focused()
    unlock(page, private_server.token("monitoring:read"))
    expect(page.locator("#view-mode")).to_have_text("full view (token)")
    expect(page.locator("#content")).to_be_visible()
    expect(page.locator("#auth-notice")).to_be_hidden()
    web.assert_no_errors(allowed="the server responded with a status of 404")
