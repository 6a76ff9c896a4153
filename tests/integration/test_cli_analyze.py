"""`codequal analyze` as a user runs it: JSON report, --fail-on, and exit 2 on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from .conftest import PlantedRepo

FINDING_KEYS = {"severity", "file", "line", "rule", "message", "agent"}


def analyze(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codequal", "analyze", *args, "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "CODEQUAL_LOG_LEVEL": "info"},
    )


def test_json_report_lists_findings_with_exactly_the_documented_keys(
    tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    result = analyze(
        tmp_path, str(planted_repo.path), "--base", "main", "--head", "feature", "--mode",
        "quick", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert report["status"] == "completed"
    assert report["mode"] == "quick"
    assert {"findings", "mode", "status", "timings", "cost"} <= set(report)
    assert report["findings"]
    assert all(set(f) == FINDING_KEYS for f in report["findings"])


def test_fail_on_exits_1_when_a_finding_reaches_the_severity(
    tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    args = [str(planted_repo.path), "--base", "main", "--head", "feature", "--mode", "quick"]
    assert analyze(tmp_path, *args, "--fail-on", "critical").returncode == 1
    clean = analyze(tmp_path, str(planted_repo.path), "--base", "main", "--head", "main")
    assert clean.returncode == 0, clean.stderr
    assert "0 findings" in clean.stdout


def test_bad_repository_and_unknown_ref_exit_2_with_a_sentence(
    tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    missing = analyze(tmp_path, str(tmp_path / "nowhere"), "--base", "a", "--head", "b")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    not_git = tmp_path / "plain"
    not_git.mkdir()
    plain = analyze(tmp_path, str(not_git), "--base", "a", "--head", "b")
    assert plain.returncode == 2
    assert "is not a git repository" in plain.stderr
    ref = analyze(tmp_path, str(planted_repo.path), "--base", "main", "--head", "nope")
    assert ref.returncode == 2
    assert "ref 'nope' does not exist" in ref.stderr
