"""Cost alerts: generated from the budget settings, exported for Prometheus, fired by our engine.

The exported rule file passes ``promtool check rules``, and tests/rules/costs.rules.test.yml
passes under both ``promtool test rules`` and ``codequal rules test``. The server's own
scraper, rule scheduler and notifier, driven with explicit times, page a webhook when the
day's spend goes over the budget, and when an analysis costs more than a threshold that is
not one of the cost histogram's bucket bounds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from codequal.alerting.cost_rules import (
    ANALYSIS_COST_ALERT,
    COST_ALERTS,
    DAILY_BUDGET_ALERT,
    RULES_FILE,
    cost_rule_groups,
)
from codequal.alerting.rules import AlertingRule
from codequal.api.app import create_app
from codequal.config import Settings, load_settings

from ..conftest import TEST_JWT_SECRET
from ..unit.alerting.test_runbooks import RUNBOOKS, SECTIONS, sections

TESTS = Path(__file__).parents[1] / "rules" / "costs.rules.test.yml"
PROMTOOL = shutil.which("promtool")
BUDGET_ENV = {"CODEQUAL_DAILY_BUDGET": "10", "CODEQUAL_ANALYSIS_COST_ALERT": "0.75"}


def promtool() -> str:
    if PROMTOOL is None:
        if os.environ.get("CODEQUAL_REQUIRE_SERVICES") == "1":
            pytest.fail("promtool is not installed (Debian package prometheus)")
        pytest.skip("promtool is not installed")
    return PROMTOOL


def codequal(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEQUAL_")}
    return subprocess.run(
        [sys.executable, "-m", "codequal", *args],
        env=clean | {"CODEQUAL_DATA_DIR": str(cwd / "data")} | env,
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def exported(tmp_path: Path, env: dict[str, str]) -> Path:
    out = tmp_path / "out"
    tmp_path.mkdir(exist_ok=True)
    result = codequal("rules", "export", "--out", str(out), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return out


# -- generation and export --------------------------------------------------------------------


def alert_names(daily: float | None, per_analysis: float | None) -> list[str]:
    return [
        r.alert
        for g in cost_rule_groups(daily, per_analysis)
        for r in g.rules
        if isinstance(r, AlertingRule)
    ]


def test_each_cost_alert_exists_only_when_its_setting_is_set() -> None:
    assert alert_names(None, None) == []
    assert alert_names(25.0, None) == [DAILY_BUDGET_ALERT]
    assert alert_names(None, 0.5) == [ANALYSIS_COST_ALERT]
    assert alert_names(25.0, 0.5) == [DAILY_BUDGET_ALERT, ANALYSIS_COST_ALERT]


def test_the_thresholds_from_settings_are_in_the_rules() -> None:
    (group,) = cost_rule_groups(25.0, 0.005)
    daily, per_analysis = group.rules
    assert isinstance(daily, AlertingRule) and isinstance(per_analysis, AlertingRule)
    assert daily.expr.rstrip().endswith("> 25.0")
    assert "daily budget of $25.00" in daily.annotations["summary"]
    assert "codequal_analysis_cost_over_threshold_total" in per_analysis.expr
    assert "more than $0.005 each" in per_analysis.annotations["summary"]


def test_a_threshold_between_bucket_bounds_is_accepted_and_exported(tmp_path: Path) -> None:
    (group,) = cost_rule_groups(None, 0.75)
    (rule,) = group.rules
    assert isinstance(rule, AlertingRule)
    assert "more than $0.75 each" in rule.annotations["summary"]
    out = exported(tmp_path, {"CODEQUAL_ANALYSIS_COST_ALERT": "0.75"})
    rules = yaml.safe_load((out / RULES_FILE).read_text())["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == [ANALYSIS_COST_ALERT]


def test_export_writes_the_cost_rules_only_when_a_budget_is_set(tmp_path: Path) -> None:
    assert not (exported(tmp_path / "none", {}) / RULES_FILE).exists()
    out = exported(tmp_path / "set", BUDGET_ENV | {"CODEQUAL_EXTERNAL_URL": "https://cq.example"})
    rules = yaml.safe_load((out / RULES_FILE).read_text())["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == list(COST_ALERTS)
    assert rules[0]["annotations"]["runbook_url"] == (
        "https://cq.example/runbooks/DailyCostBudgetExceeded"
    )


def test_exported_cost_rules_pass_promtool_check(tmp_path: Path) -> None:
    out = exported(tmp_path, BUDGET_ENV)
    result = subprocess.run([promtool(), "check", "rules", str(out / RULES_FILE)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout


def test_repository_unit_tests_pass_under_promtool(tmp_path: Path) -> None:
    out = exported(tmp_path, BUDGET_ENV)
    shutil.copy(TESTS, out / TESTS.name)
    result = subprocess.run([promtool(), "test", "rules", TESTS.name], cwd=out,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_repository_unit_tests_pass_under_codequal_rules_test(tmp_path: Path) -> None:
    out = exported(tmp_path, BUDGET_ENV)
    shutil.copy(TESTS, out / TESTS.name)
    result = codequal("rules", "test", TESTS.name, env={}, cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("alert", COST_ALERTS)
def test_cost_alert_has_a_runbook_with_every_section(alert: str) -> None:
    text = (RUNBOOKS / f"{alert}.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {alert}\n")
    found = sections(text)
    assert [s for s in SECTIONS if not found.get(s, "").strip()] == []
    confirm = found["How to confirm"]
    assert "```promql" in confirm and "```sh" in confirm and "codequal_" in confirm


# -- through the server's engine and notifier ------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


Analysis = tuple[str, str, float] | None  # (mode, provider, dollars), or no analysis


def drive(settings: Settings, analyses: list[Analysis]) -> list[dict[str, dict[str, Any]]]:
    """Serve with ``settings``; every 15 s from a fixed start, the orchestrator records the
    step's analysis, then the server scrapes, evaluates its rules and notifies. Returns the
    cost alerts' rows of the rules overview after each step."""
    app = create_app(settings, start_workers=False)
    start = 1_800_000_000.0
    overviews = []
    with TestClient(app):
        assert app.state.codequal.wait_ready(30)
        orchestrator = app.state.codequal.analysis.orchestrator
        alerting = app.state.codequal.alerting
        for step, analysis in enumerate(analyses):
            now = start + 15 * step
            if analysis:
                orchestrator.observe_cost(*analysis)
            alerting.history.scraper.scrape_once(round(now * 1000))
            alerting.scheduler.evaluate_once(now)
            alerting.notifier.tick(now)
            overview = {r["name"]: r for r in alerting.rules_overview() if r["name"] in COST_ALERTS}
            overviews.append(overview)
        # Past group_interval too: another test's series of the process-wide counters may
        # have opened the alert's notification group first.
        alerting.notifier.tick(now + settings.alert_group_interval + 1)
    return overviews


def firing_modes(overview: dict[str, dict[str, Any]], provider: str) -> list[str]:
    """The modes the per-analysis alert fires for, among ``provider``'s series."""
    alerts = overview[ANALYSIS_COST_ALERT]["alerts"]
    return sorted(
        a.labels["mode"]
        for a in alerts
        if a.status == "firing" and a.labels["provider"] == provider
    )


def test_spending_over_the_daily_budget_fires_and_notifies(tmp_path: Path, webhook: str) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        jwt_secret=TEST_JWT_SECRET,
        webhook_url=webhook,
        daily_budget=10.0,
        analysis_cost_alert=5.0,
    )
    # The label values are this test's own, other tests' analyses cost fractions of a cent.
    steps: list[Analysis] = [("deep", "budget-test", 4.0), None, ("deep", "budget-test", 7.0), None]
    overviews = drive(settings, steps)
    # $4 stays under the $10 budget; $11 is over it, and the rule has no `for`.
    states = [o[DAILY_BUDGET_ALERT]["state"] for o in overviews]
    assert states == ["inactive", "inactive", "firing", "firing"]
    sent = [a for body in Receiver.received for a in body["alerts"]]
    budget = [a for a in sent if a["labels"]["alertname"] == DAILY_BUDGET_ALERT]
    assert budget and budget[0]["status"] == "firing"
    assert budget[0]["labels"]["severity"] == "warning"
    assert re.fullmatch(
        r"Analyses cost \$11\.\d\d in the last 24 hours, over the daily budget of \$10\.00",
        budget[0]["annotations"]["summary"],
    )
    assert budget[0]["annotations"]["runbook_url"].endswith("/runbooks/DailyCostBudgetExceeded")
    # The $7 analysis is over the $5 per-analysis threshold as well; the $4 one is not.
    over = [
        a
        for a in sent
        if a["labels"]["alertname"] == ANALYSIS_COST_ALERT
        and a["labels"]["provider"] == "budget-test"
    ]
    assert [(a["status"], a["labels"]["mode"]) for a in over] == [("firing", "deep")]
    assert over[0]["annotations"]["summary"].startswith("1 analyses in deep mode cost more than $5")


def test_a_threshold_between_bucket_bounds_fires_only_for_analyses_above_it(
    tmp_path: Path, webhook: str
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        jwt_secret=TEST_JWT_SECRET,
        webhook_url=webhook,
        analysis_cost_alert=0.75,
    )
    # $0.70 and $0.80 share the cost histogram's ($0.5, $1] bucket: only the counter the
    # orchestrator keeps at the threshold tells them apart. $0.75 itself is not over it.
    provider = "threshold-test"
    steps: list[Analysis] = [
        ("quick", provider, 0.70),
        ("comprehensive", provider, 0.75),
        None,
        ("deep", provider, 0.80),
        None,
    ]
    overviews = drive(settings, steps)
    assert [firing_modes(o, provider) for o in overviews] == [[], [], [], ["deep"], ["deep"]]
    sent = [
        a
        for body in Receiver.received
        for a in body["alerts"]
        if a["labels"]["alertname"] == ANALYSIS_COST_ALERT and a["labels"]["provider"] == provider
    ]
    assert [(a["status"], a["labels"]["mode"]) for a in sent] == [("firing", "deep")]
    assert sent[0]["labels"]["severity"] == "ticket"
    assert sent[0]["annotations"]["summary"].startswith(
        "1 analyses in deep mode cost more than $0.75 each in the last hour on "
    )
    assert sent[0]["annotations"]["runbook_url"].endswith("/runbooks/AnalysisCostOverThreshold")
