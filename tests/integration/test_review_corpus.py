"""The review corpus end to end: real git, real agents in their processes, real stores.

Every expected finding is pinned to file, line and rule; the SARIF of every case validates
against the official SARIF 2.1.0 schema (vendored in tests/sarif).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from codequal.analysis.sarif import to_sarif
from codequal.analysis.service import AnalysisService
from codequal.analysis.store import AnalysisRecord, AnalysisRequest
from codequal.config import load_settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.storage.db import Database

from .review_corpus import CASES, Case, Pin, build

SCHEMA = json.loads((Path(__file__).parents[1] / "sarif" / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture
def service(database: Database, tmp_path: Path) -> Iterator[AnalysisService]:
    settings = load_settings(data_dir=tmp_path / "data", log_format="json")
    telemetry = setup_telemetry(settings, database, bridge_stdlib=False)
    yield build_analysis(settings, database, telemetry)
    telemetry.shutdown(10)


def analyse(service: AnalysisService, repo: Path, mode: str = "comprehensive") -> AnalysisRecord:
    analysis_id = service.submit(AnalysisRequest(str(repo), "main", "feature", mode))
    record = service.pool.run_one(analysis_id)
    assert record is not None
    return record


def pins(findings: list[dict[str, Any]]) -> list[Pin]:
    return sorted((f["file"], f["line"], f["rule"]) for f in findings)


def validate_sarif(log: dict[str, Any]) -> None:
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]
    assert not errors, errors


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case_reports_exactly_its_known_answer(
    service: AnalysisService, tmp_path: Path, case: Case
) -> None:
    record = analyse(service, build(tmp_path, case.base, case.head))
    report = record.to_report(all_findings=True)
    assert report["status"] == case.status, report["summary"]
    assert pins(report["findings"]) == sorted(case.new)
    assert pins(report["existingFindings"]) == sorted(case.existing)
    skipped = {(s["file"], s["agent"], s["reason"]) for s in report["coverage"]["skipped"]}
    assert skipped == set(case.skipped)
    # Without --all-findings the existing ones are counted, not listed.
    assert "existingFindings" not in record.to_report()
    assert sum(report["summary"]["existingCounts"].values()) == len(case.existing)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case_sarif_validates_and_marks_new_and_existing_results(
    service: AnalysisService, tmp_path: Path, case: Case
) -> None:
    record = analyse(service, build(tmp_path, case.base, case.head))
    log = to_sarif(record, all_findings=True)
    validate_sarif(log)
    (run,) = log["runs"]
    located = {
        (
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
            r["ruleId"],
        ): r["baselineState"]
        for r in run["results"]
    }
    expected = {(f, line or 1, rule): "new" for f, line, rule in case.new}
    expected |= {(f, line or 1, rule): "unchanged" for f, line, rule in case.existing}
    assert located == expected
    assert all(r["partialFingerprints"]["primaryLocationLineHash"] for r in run["results"])
    assert run["invocations"][0]["executionSuccessful"] is True
    notes = run["invocations"][0]["toolExecutionNotifications"]
    notified = {
        n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for n in notes
        if "locations" in n
    }
    gaps = {f for f, _agent, reason in case.skipped if reason not in ("binary", "excluded")}
    assert notified == gaps


def test_a_python_2_file_says_why_it_was_skipped(service: AnalysisService, tmp_path: Path) -> None:
    case = next(c for c in CASES if "Python 2" in c.name)
    report = analyse(service, build(tmp_path, case.base, case.head)).to_report()
    (security,) = [s for s in report["coverage"]["skipped"] if s["agent"] == "security"]
    assert "syntax error" in security["detail"] and "Python 2" in security["detail"]
    assert security["couldHide"] == "high"
    assert any("not fully analysed" in r for r in report["summary"]["partialReasons"])


def test_security_rules_carry_github_security_severity(
    service: AnalysisService, tmp_path: Path
) -> None:
    case = CASES[0]
    log = to_sarif(analyse(service, build(tmp_path, case.base, case.head)))
    rules = {r["id"]: r for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["B506"]["properties"]["security-severity"] == "5.5"
    assert "security" in rules["B506"]["properties"]["tags"]
    assert rules["B506"]["helpUri"].startswith("https://bandit.readthedocs.io/")
    assert rules["E722"]["helpUri"].startswith("https://docs.astral.sh/ruff/")
    assert "security-severity" not in rules["E722"]["properties"]
