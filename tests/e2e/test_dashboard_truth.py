"""The dashboard never looks healthy when it is not: the badge is the worst of health, firing
alerts and reachability; chart axes fit their labels; chart buckets keep their edges.

The server's answer is real; where a state is hard to provoke on a live server (a critical
alert, a slow analysis), the test rewrites that field of the real answer on its way to the
page, so what is tested is the page's reading of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from playwright.sync_api import Page, Route, expect

from .conftest import BrowserPage, Server
from .test_dashboard_browser import open_dashboard, text

PUBLIC = "**/api/monitoring/public/dashboard*"


def rewrite(page: Page, change: Callable[[dict[str, Any]], None]) -> None:
    """Every public dashboard answer reaches the page with ``change`` applied to its JSON."""

    def handle(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        change(body)
        route.fulfill(response=response, body=orjson.dumps(body))

    page.route(PUBLIC, handle)


def test_a_firing_critical_alert_turns_the_badge_red_with_its_name(
    server: Server, web: BrowserPage
) -> None:
    def firing(body: dict[str, Any]) -> None:
        body["alerts"] = [
            {"alertname": "DeepWikiDown", "severity": "critical", "muted": False},
            {"alertname": "HighMemoryUsage", "severity": "warning", "muted": False},
            {"alertname": "SlowAnalysis", "severity": "critical", "muted": True},
        ]

    rewrite(web.page, firing)
    page = open_dashboard(web, server)
    badge = page.locator("#overall-status")
    expect(badge).to_have_text("critical: DeepWikiDown")
    expect(badge).to_have_class(re.compile(r"\bbadge-critical\b"))
    assert "HighMemoryUsage (warning)" in (badge.get_attribute("title") or "")
    web.assert_no_errors()


def test_a_warning_alert_is_amber_and_a_muted_critical_one_does_not_count(
    server: Server, web: BrowserPage
) -> None:
    def firing(body: dict[str, Any]) -> None:
        body["alerts"] = [
            {"alertname": "SlowAnalysis", "severity": "critical", "muted": True},
            {"alertname": "HighMemoryUsage", "severity": "warning", "muted": False},
        ]

    rewrite(web.page, firing)
    page = open_dashboard(web, server)
    expect(page.locator("#overall-status")).to_have_text("warning: HighMemoryUsage")
    expect(page.locator("#overall-status")).to_have_class(re.compile(r"\bbadge-warning\b"))


def test_the_badge_is_healthy_only_with_nothing_firing(server: Server, web: BrowserPage) -> None:
    page = open_dashboard(web, server)
    body = server.get("/api/monitoring/public/dashboard")
    assert body["status"] == "healthy" and body["alerts"] == []
    expect(page.locator("#overall-status")).to_have_text("healthy")
    expect(page.locator("#overall-status")).to_have_class(re.compile(r"\bbadge-healthy\b"))


def test_an_unreachable_server_turns_the_badge_grey_with_the_last_good_time(
    server: Server, web: BrowserPage
) -> None:
    page = open_dashboard(web, server, "?refresh=2")
    last_good = text(page, "last-updated")
    page.route(PUBLIC, lambda route: route.abort())
    badge = page.locator("#overall-status")
    expect(badge).to_have_text(f"unreachable · last data {last_good}", timeout=10_000)
    expect(badge).to_have_class(re.compile(r"\bbadge-unreachable\b"))
    page.unroute(PUBLIC)
    expect(badge).to_have_text("healthy", timeout=10_000)
    web.assert_no_errors(allowed="net::ERR_FAILED")


AXIS_FIT = """
(id) => {
  const u = document.getElementById(id).uplot;
  const axis = u.axes[1];
  u.ctx.font = axis.font[0];
  const widest = Math.max(...axis._values.map((v) => u.ctx.measureText(v).width));
  return {size: axis._size, needed: widest / devicePixelRatio + axis.ticks.size + axis.gap,
          labels: axis._values};
}
"""


def test_no_chart_axis_clips_its_labels(server: Server, web: BrowserPage) -> None:
    def slow(body: dict[str, Any]) -> None:
        # 20 to 35 minutes: labels such as "20 min 35 s", the ones that were cut to "min 20 s".
        series = body["series"]
        series["p95DurationByMode"] = {
            "quick": [1200.0 + 15 * i for i in range(len(series["timestamps"]))]
        }

    rewrite(web.page, slow)
    page = open_dashboard(web, server)
    for chart in ("chart-rate", "chart-success", "chart-p95"):
        fit = page.evaluate(AXIS_FIT, chart)
        assert fit["labels"], chart
        assert fit["needed"] <= fit["size"], f"{chart}: {fit}"
    labels = page.evaluate(AXIS_FIT, "chart-p95")["labels"]
    assert any(re.fullmatch(r"\d+ min \d+ s", label) for label in labels), labels


def test_chart_buckets_are_aligned_to_their_step(server: Server, web: BrowserPage) -> None:
    page = open_dashboard(web, server, "?refresh=2")
    charts = page.locator("#charts")
    first = (
        float(charts.get_attribute("data-start") or 0),
        float(charts.get_attribute("data-end") or 0),
    )
    step = (first[1] - first[0]) / 60
    assert step == 60.0  # the 1 h range: one-minute buckets
    assert first[1] % step == 0 and first[0] % step == 0
    before = text(page, "last-updated")
    expect(page.locator("#last-updated")).not_to_have_text(before, timeout=10_000)
    second = float(charts.get_attribute("data-start") or 0)
    assert (second - first[0]) % step == 0  # the same edges, or whole steps later
