"""The dashboard's SLO burn-rate chart and anomaly panel, in a real Chromium against `codequal
serve`: both are token-only, both come from measured data (the SLO recording rules' history
through the Prometheus API, the anomalies the scanner stored)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from codequal.analytics.anomaly import Anomaly
from codequal.analytics.anomaly_store import AnomalyStore, Found
from codequal.storage import open_database
from tests.helpers import eventually

from .conftest import (
    ANALYSIS_SECONDS,
    BrowserPage,
    Server,
    make_repo,
    start_server,
    stop_server,
    submit,
    wait_finished,
)
from .test_dashboard_browser import ARTIFACTS, open_dashboard, unlock

BURN_QUERY = (
    "slo:sli_error:ratio_rate1h / on (sloth_id, sloth_slo, sloth_service) "
    "group_left slo:error_budget:ratio"
)
# Scrapes and rule evaluations every 2 s instead of 15 s, so the SLO recording rules have a
# history to chart within seconds of the seeded analyses.
FAST_HISTORY = {"CODEQUAL_SCRAPE_INTERVAL": "2", "CODEQUAL_RULE_INTERVAL": "2"}
HOUR = 3600.0


@pytest.fixture(scope="module")
def analytics_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One completed and two failed analyses: a counter only shows a rate from its second
    increment, so two failures make analysis-success burn its budget visibly.

    A ref that does not exist is the caller's mistake and burns nothing, so the failures are
    the service's own: the DeepWiki workspace is replaced by a file, as a broken volume would
    leave it, and put back after.
    """
    root = tmp_path_factory.mktemp("e2e-analytics")
    data_dir = root / "data"
    data_dir.mkdir()
    process, base = start_server(data_dir, CODEQUAL_REPOSITORY_ROOTS=str(root), **FAST_HISTORY)
    try:
        seeding = Server(base, make_repo(root), data_dir=data_dir)
        assert wait_finished(seeding, submit(seeding, "feature")) == "completed", process.output()
        workspace = data_dir / "deepwiki"
        shutil.rmtree(workspace)
        workspace.write_text("not a directory")
        assert wait_finished(seeding, submit(seeding, "feature")) == "failed", process.output()
        # The second failure must land in a later scrape than the first, or the failure
        # counter's series would start at 2 and never show a rate.
        eventually(
            lambda: instant(seeding, 'codequal_analysis_failed_total{error_type="deepwiki"} == 1'),
            ANALYSIS_SECONDS,
            "the first failure in the metric history",
        )
        assert wait_finished(seeding, submit(seeding, "feature")) == "failed"
        workspace.unlink()
        yield seeding
    finally:
        stop_server(process)


def instant(server: Server, query: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.token('monitoring:read')}"}
    response = httpx.get(
        server.base + "/api/v1/query", params={"query": query}, headers=headers, timeout=10
    )
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def burn_rates(server: Server) -> list[dict[str, Any]]:
    """What the page's range query answers now, over the last hour."""
    end = time.time()
    params: dict[str, str | float] = {
        "query": BURN_QUERY, "start": end - HOUR, "end": end, "step": 30,
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {server.token('monitoring:read')}"}
    response = httpx.get(
        server.base + "/api/v1/query_range", params=params, headers=headers, timeout=10
    )
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def failures_recorded(server: Server) -> bool:
    """The failures have reached analysis-success's recorded 1 h error ratio, and every SLO
    has a recorded ratio (the latency one needs a second scrape of the duration histogram)."""
    series = burn_rates(server)
    slos = server.get("/api/monitoring/slo", "monitoring:read")["slos"]
    if {s["metric"]["sloth_slo"] for s in series} != {s["name"] for s in slos}:
        return False
    for found in series:
        values = [float(v) for _, v in found["values"] if v != "NaN"]
        if found["metric"]["sloth_slo"] == "analysis-success" and values and values[-1] > 0:
            return True
    return False


def test_the_burn_rate_chart_plots_each_slo_from_the_recorded_history(
    analytics_server: Server, web: BrowserPage
) -> None:
    server = analytics_server
    eventually(lambda: failures_recorded(server), ANALYSIS_SECONDS, "the SLO recording rules")
    page = open_dashboard(web, server)
    with page.expect_response(lambda r: "/api/v1/query_range?" in r.url) as answer:
        unlock(page, server.token("monitoring:read"))
    result = answer.value.json()["data"]["result"]
    # The page asked for the SLO rules' own series over the dashboard's range.
    charts = page.locator("#charts")
    query = httpx.URL(answer.value.url).params
    assert query["query"] == BURN_QUERY
    assert float(query["start"]) == float(charts.get_attribute("data-start") or "nan")
    assert float(query["end"]) == float(charts.get_attribute("data-end") or "nan")
    names = sorted(s["metric"]["sloth_slo"] for s in result)
    slos = server.get("/api/monitoring/slo", "monitoring:read")["slos"]
    assert names == sorted(s["name"] for s in slos)
    success = next(s for s in result if s["metric"]["sloth_slo"] == "analysis-success")
    assert max(float(v) for _, v in success["values"] if v != "NaN") > 1  # burning, measured
    figure = page.locator("#burn-figure")
    expect(figure).to_have_attribute("data-slos", ",".join(names))
    expect(figure.locator(".uplot")).to_have_count(1)
    legend = figure.locator(".u-legend")
    for name in [*names, "1\u00d7 (budget lasts the window)"]:
        expect(legend).to_contain_text(name)
    expect(page.locator("#burn-message")).to_be_hidden()
    web.assert_no_errors()


def test_a_failing_burn_query_is_explained_in_its_panel_and_the_rest_stays_fresh(
    analytics_server: Server, web: BrowserPage
) -> None:
    page = open_dashboard(web, analytics_server)

    def refuse(route: Route) -> None:
        body = '{"status": "error", "errorType": "internal", "error": "store down"}'
        route.fulfill(status=503, content_type="application/json", body=body)

    page.route("**/api/v1/query_range?*", refuse)
    unlock(page, analytics_server.token("monitoring:read"))
    expect(page.locator("#burn-message")).to_have_text(
        "Could not load the burn rates: HTTP 503: store down"
    )
    expect(page.locator("#chart-burn")).to_be_hidden()
    expect(page.locator("#slo-table tr")).to_have_count(3)
    expect(page.locator("#stale-banner")).to_be_hidden()
    web.assert_no_errors(allowed="the server responded with a status of 503")


def store_anomalies(server: Server) -> tuple[Anomaly, Anomaly]:
    """An open failure-rate spike that started before a closed throughput dip: what the
    scanner would have stored."""
    assert server.data_dir is not None
    now = time.time()
    spike = Anomaly(
        detector="failure_rate", start=now - 2 * HOUR, end=now - 300, peak_at=now - HOUR,
        peak=0.6, baseline=0.02, band=(0.0, 0.05), score=30.0, direction="up", status="open",
        explanation="failure ratio 60.0 % is 30.0x its baseline of 2.0 % (band 0.0 % to 5.0 %)",
    )  # fmt: skip
    dip = Anomaly(
        detector="robust_z", start=now - HOUR, end=now - HOUR + 600, peak_at=now - HOUR + 300,
        peak=0.01, baseline=0.5, band=(0.2, 0.8), score=-6.5, direction="down",
        status="closed", explanation="throughput 0.6/min is 6.5 robust z below 30.0/min",
    )  # fmt: skip
    db = open_database(f"sqlite:///{server.data_dir / 'codequal.db'}")
    try:
        AnomalyStore(db).upsert([Found("failure_ratio", spike), Found("throughput", dip)], now)
    finally:
        db.engine.dispose()
    return spike, dip


def cells(page: Page, index: int) -> list[str]:
    row = page.locator("#anomalies-table tr").nth(index)
    return [cell.strip() for cell in row.locator("td").all_inner_texts()]


def test_the_anomaly_panel_shows_open_anomalies_first_with_their_baseline_and_band(
    analytics_server: Server, web: BrowserPage
) -> None:
    spike, dip = store_anomalies(analytics_server)
    requests: list[str] = []
    web.page.on("request", lambda r: requests.append(r.url))
    page = open_dashboard(web, analytics_server)
    expect(page.locator("#private")).to_be_hidden()
    assert not [u for u in requests if "/anomalies" in u or "/api/v1/" in u]  # token-only
    unlock(page, analytics_server.token("monitoring:read"))
    expect(page.locator("#anomalies-table tr")).to_have_count(2)
    first, second = cells(page, 0), cells(page, 1)
    assert first[:3] == ["open", "failure_rate", "failure_ratio"]
    assert first[4] == "60.0 % vs 2.0 % (0.0 % to 5.0 %)"
    assert first[5] == "30.00"
    assert first[6] == spike.explanation
    assert second[:3] == ["closed", "robust_z", "throughput"]
    assert second[4] == "0.6 /min vs 30.0 /min (12.0 /min to 48.0 /min)"
    assert second[5] == "-6.50"
    assert second[6] == dip.explanation
    expect(page.locator("#burn-figure .uplot")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#private").screenshot(path=ARTIFACTS / "dashboard-analytics.png")
    web.assert_no_errors()


def test_forgetting_the_token_removes_the_chart_and_the_anomalies(
    analytics_server: Server, web: BrowserPage
) -> None:
    eventually(lambda: burn_rates(analytics_server), ANALYSIS_SECONDS, "the SLO recording rules")
    page = open_dashboard(web, analytics_server)
    unlock(page, analytics_server.token("monitoring:read"))
    expect(page.locator("#burn-figure .uplot")).to_have_count(1)
    page.click("#forget-token")
    expect(page.locator("#view-mode")).to_have_text("public view")
    expect(page.locator("#private")).to_be_hidden()
    expect(page.locator("#burn-figure .uplot")).to_have_count(0)
    expect(page.locator("#anomalies-table tr")).to_have_count(0)
    web.assert_no_errors()
