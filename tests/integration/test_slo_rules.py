"""Generated SLO rules: promtool accepts them and their unit tests pass under promtool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codequal.analytics.slo import BURN_ALERTS, WINDOWS, SLOSpecError, load_spec, status_from_ratios

TESTS = Path(__file__).parents[1] / "rules" / "slo.rules.test.yml"
PROMTOOL = shutil.which("promtool")


def promtool() -> str:
    if PROMTOOL is None:
        if os.environ.get("CODEQUAL_REQUIRE_SERVICES") == "1":
            pytest.fail("promtool is not installed (Debian package prometheus)")
        pytest.skip("promtool is not installed")
    return PROMTOOL


def generate(tmp_path: Path, *spec: str) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "codequal", "slo", "generate", *spec, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return tmp_path / "slo.rules.yml"


def test_generated_rules_pass_promtool_check(tmp_path: Path) -> None:
    rules = generate(tmp_path)
    result = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    groups = yaml.safe_load(rules.read_text())["groups"]
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    assert {f"slo:sli_error:ratio_rate{w}" for w in WINDOWS} <= records
    assert "slo:period_error_budget_remaining:ratio" in records
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert len(alerts) == 3 * len(BURN_ALERTS)


def test_repository_unit_tests_pass_under_promtool(tmp_path: Path) -> None:
    generate(tmp_path)
    shutil.copy(TESTS, tmp_path / TESTS.name)
    result = subprocess.run([promtool(), "test", "rules", TESTS.name], cwd=tmp_path,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_repository_unit_tests_pass_under_codequal_rules_test(tmp_path: Path) -> None:
    generate(tmp_path)
    shutil.copy(TESTS, tmp_path / TESTS.name)
    result = subprocess.run(
        [sys.executable, "-m", "codequal", "rules", "test", TESTS.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_bad_spec_is_refused_with_the_slo_and_field_named(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yml"
    spec.write_text("service: x\nslos:\n  - name: broken\n    objective: 120\n    sli: {}\n")
    with pytest.raises(SLOSpecError, match="SLO broken: `objective` must be between 0 and 100"):
        load_spec(spec)
    result = subprocess.run(
        [sys.executable, "-m", "codequal", "slo", "generate", str(spec), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "objective" in result.stderr


def test_status_maths_budget_burn_and_exhaustion() -> None:
    slo = next(s for s in load_spec() if s.name == "analysis-success")
    ratios = {"5m": 0.02, "1h": 0.02, "6h": 0.005}
    status = status_from_ratios(slo, ratios, period_ratio=0.004, period_events=10_000)
    assert status["burnRates"]["1h"] == pytest.approx(2.0)
    assert status["errorBudget"]["remainingRatio"] == pytest.approx(0.6)
    assert status["errorBudget"]["totalEvents"] == pytest.approx(100)
    assert status["errorBudget"]["remainingEvents"] == pytest.approx(60)
    # 60 % of a 30-day budget left, burning at 2x: 0.6 * 30 d / 2 = 9 days.
    assert status["timeToExhaustionSeconds"] == pytest.approx(9 * 86_400)
    assert status["sli"] == pytest.approx(0.996)
