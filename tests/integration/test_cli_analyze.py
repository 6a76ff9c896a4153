"""`codequal analyze` as a user runs it: JSON report, --fail-on, and exit 2 on bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import jsonschema
import orjson
import pytest

from ..conftest import TEST_JWT_SECRET, bearer
from ..helpers import wait_until_ready
from .conftest import PlantedRepo
from .review_corpus import CASES, build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


# -- formats, partial analyses and --server ---------------------------------------------------
SCHEMA = orjson.loads(
    (Path(__file__).parents[1] / "sarif" / "sarif-schema-2.1.0.json").read_bytes()
)
LONG_SET = "VALUES = {\n" + "    1,\n" * 60 + "}\n"


def corpus(tmp_path: Path, name: str) -> Path:
    case = next(c for c in CASES if name in c.name)
    return build(tmp_path / "corpus", case.base, case.head)


def test_json_flag_and_format_json_print_the_same_report(
    tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    args = [str(planted_repo.path), "--base", "main", "--head", "feature", "--mode", "quick"]
    flag = orjson.loads(analyze(tmp_path, *args, "--json").stdout)
    option = orjson.loads(analyze(tmp_path, *args, "--format", "json").stdout)
    assert [f for f in flag["findings"]] == option["findings"]
    both = analyze(tmp_path, *args, "--json", "--format", "sarif")
    assert both.returncode == 2 and "two formats" in both.stderr


def test_sarif_output_validates_against_the_schema(tmp_path: Path) -> None:
    repo = corpus(tmp_path, "added line")
    args = [str(repo), "--base", "main", "--head", "feature", "--format", "sarif"]
    result = analyze(tmp_path, *args, "--all-findings")
    assert result.returncode == 0, result.stderr
    log = orjson.loads(result.stdout)
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    assert not list(validator.iter_errors(log))
    states = {(r["ruleId"], r["baselineState"]) for r in log["runs"][0]["results"]}
    assert {("B506", "new"), ("E722", "new"), ("E722", "unchanged")} <= states


def test_github_format_prints_one_workflow_annotation_per_finding(tmp_path: Path) -> None:
    repo = corpus(tmp_path, "added line")
    result = analyze(
        tmp_path, str(repo), "--base", "main", "--head", "feature", "--format", "github"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "::warning file=app.py,line=12,title=B506 (security)::" in "\n".join(lines)
    assert any(
        line.startswith("::notice file=app.py,line=13,title=E722 (codeQuality)::") for line in lines
    )
    assert not any("line=20" in line for line in lines)  # the untouched old one


def test_a_partial_analysis_exits_4_unless_allowed_and_fail_on_counts_what_it_could_hide(
    tmp_path: Path,
) -> None:
    repo = corpus(tmp_path, "Python 2")
    args = [str(repo), "--base", "main", "--head", "feature", "--mode", "comprehensive"]
    partial = analyze(tmp_path, *args)
    assert partial.returncode == 4, partial.stderr
    assert partial.stdout.startswith("partial")
    assert "legacy.py" in partial.stdout and "Python 2" in partial.stdout
    assert analyze(tmp_path, *args, "--allow-partial").returncode == 0
    # bandit could not read legacy.py: a high finding may hide there, a critical one may not.
    assert analyze(tmp_path, *args, "--allow-partial", "--fail-on", "high").returncode == 1
    assert analyze(tmp_path, *args, "--allow-partial", "--fail-on", "critical").returncode == 0


def test_text_groups_one_rule_firing_many_times_in_one_file(tmp_path: Path) -> None:
    repo = build(tmp_path / "set", {"README.md": "x\n"}, {"long_set.py": LONG_SET})
    result = analyze(tmp_path, str(repo), "--base", "main", "--head", "feature", "--mode", "quick")
    assert result.returncode == 0, result.stderr
    assert "B033 \u00d7 59 in long_set.py, first at line 3" in result.stdout
    assert result.stdout.count("B033") == 2  # the rule column and the grouped message
    json_report = analyze(tmp_path, str(repo), "--base", "main", "--head", "feature", "--mode",
                          "quick", "--json")  # fmt: skip
    assert sum(f["rule"] == "B033" for f in orjson.loads(json_report.stdout)["findings"]) == 59


def test_without_a_terminal_each_step_prints_one_line_on_stderr(
    tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    result = analyze(tmp_path, str(planted_repo.path), "--base", "main", "--head", "feature")
    steps = [
        line.split("] ", 1)[1]
        for line in result.stderr.splitlines()
        if line.startswith("codequal: [")
    ]
    assert steps[:3] == ["resolve-repository", "check-vector-db", "clone"]
    assert "agents" in steps and steps[-1] == "cleanup"


def test_deep_mode_without_an_llm_runs_comprehensive_and_says_so(
    tmp_path: Path, planted_repo: PlantedRepo
) -> None:
    args = [str(planted_repo.path), "--base", "main", "--head", "feature", "--mode", "deep"]
    report = orjson.loads(analyze(tmp_path, *args, "--json").stdout)
    assert report["mode"] == "comprehensive"
    assert "no" in report["modeReason"] and "LLM" in report["modeReason"]
    assert any("CODEQUAL_LLM_BASE_URL" in n for n in report["summary"]["notes"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "CODEQUAL_DATA_DIR": str(tmp_path / "srv"),
           "CODEQUAL_JWT_SECRET": TEST_JWT_SECRET, "CODEQUAL_LOG_LEVEL": "warn"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "codequal", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, cast(Any, proc), 60)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def test_server_mode_works_with_an_analyses_write_only_token(
    tmp_path: Path, planted_repo: PlantedRepo, server: str
) -> None:
    token = bearer("analyses:write", subject="ci-job")["Authorization"].split()[1]
    args = [str(planted_repo.path), "--base", "main", "--head", "feature", "--mode", "quick",
            "--server", server, "--token", token]  # fmt: skip
    result = analyze(tmp_path, *args, "--json")
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert report["status"] == "completed"
    assert any(f["rule"] == "B602" for f in report["findings"])
    sarif = analyze(tmp_path, *args, "--format", "sarif")
    assert sarif.returncode == 0 and orjson.loads(sarif.stdout)["version"] == "2.1.0"
    # Another subject's write-only token cannot read it; a reader can.
    other = httpx.get(f"{server}/api/analyses/{report['id']}", headers=bearer("analyses:write"))
    assert other.status_code == 404
    reader = httpx.get(f"{server}/api/analyses/{report['id']}", headers=bearer("monitoring:read"))
    assert reader.status_code == 200


def test_server_mode_errors_are_sentences_not_tracebacks(
    tmp_path: Path, planted_repo: PlantedRepo, server: str
) -> None:
    base = [str(planted_repo.path), "--base", "main", "--head", "feature", "--server"]
    cases = [
        ([*base, server, "--token", "not-a-token"], "refused the token (401)"),
        ([*base, server, "--token", bearer("monitoring:read")["Authorization"].split()[1]],
         "not allowed to do this (403)"),
        ([*base, "http://127.0.0.1:1", "--token", "x"], "cannot reach http://127.0.0.1:1"),
        (["/etc", "--base", "a", "--head", "b", "--server", server, "--token",
          bearer("analyses:write")["Authorization"].split()[1]], "refused the analysis (400)"),
    ]  # fmt: skip
    for args, sentence in cases:
        result = analyze(tmp_path, *args)
        assert result.returncode == 2, result.stderr
        assert sentence in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
