"""codeQuality agent: ruff violations the PR introduced, matched by rule, file and line text."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from codequal.analysis.agents.base import AgentError, AgentInput, AgentTimeout, Finding
from codequal.analysis.agents.quality import QualityAgent, ruff_severity

MakePR = Callable[..., AgentInput]

BASE = "import os\n\n\ndef area(r):\n    return 3.14 * r * r\n"


def brief(findings: list[Finding]) -> list[tuple[str, str, int | None, str, str]]:
    return [(f.severity, f.file, f.line, f.rule, f.agent) for f in findings]


def test_reports_only_violations_new_in_head_even_when_old_ones_moved(make_pr: MakePR) -> None:
    head = (
        "import sys\n"  # new unused import: F401
        + BASE  # the old unused `import os`, now on line 2: not reported
        + "\n\ndef collect(item, into=[]):\n"  # mutable default: B006
        + "    if item == None:\n"  # comparison to None: E711
        + "        return into\n    into.append(item)\n    return into\n"
    )
    inp = make_pr({"geo/shapes.py": BASE}, {"geo/shapes.py": head})
    assert brief(QualityAgent().run(inp)) == [
        ("medium", "geo/shapes.py", 1, "F401", "codeQuality"),
        ("medium", "geo/shapes.py", 9, "B006", "codeQuality"),
        ("low", "geo/shapes.py", 10, "E711", "codeQuality"),
    ]


def test_a_second_copy_of_an_existing_violation_is_new(make_pr: MakePR) -> None:
    inp = make_pr({"m.py": "import os\n"}, {"m.py": "import os\nimport os\n"})
    # Both are on the added line 2; ruff moves the unused-import report to the last binding,
    # which is the PR's (matching by line text used to pair it with base's line 1).
    assert brief(QualityAgent().run(inp)) == [
        ("medium", "m.py", 2, "F401", "codeQuality"),
        ("medium", "m.py", 2, "F811", "codeQuality"),
    ]


def test_renamed_file_is_compared_with_its_old_path(make_pr: MakePR) -> None:
    body = BASE + "".join(f"\n\ndef f{i}():\n    return {i}\n" for i in range(8))
    inp = make_pr({"old.py": body}, {"old.py": None, "new.py": body + "\nx = 1\n"})
    assert inp.changed[0].status == "renamed"
    assert QualityAgent().run(inp) == []


def test_new_repository_reports_every_violation(make_pr: MakePR) -> None:
    inp = make_pr(None, {"pkg/m.py": BASE, "README.md": "import os\n"})
    assert brief(QualityAgent().run(inp)) == [("medium", "pkg/m.py", 1, "F401", "codeQuality")]


def test_syntax_error_is_reported_as_a_medium_finding(make_pr: MakePR) -> None:
    inp = make_pr({"m.py": "x = 1\n"}, {"m.py": "def broken(:\n"})
    findings = QualityAgent().run(inp)
    assert findings
    assert {(f.severity, f.rule) for f in findings} == {("medium", "invalid-syntax")}


def test_probable_bugs_are_medium_and_style_is_low() -> None:
    assert [
        ruff_severity(r)
        for r in ("F821", "B006", "E999", "invalid-syntax", "E711", "W291", "SIM102")
    ] == [
        "medium",
        "medium",
        "medium",
        "medium",
        "low",
        "low",
        "low",
    ]


def test_ruff_crash_raises_agent_error(make_pr: MakePR) -> None:
    inp = make_pr(None, {"m.py": "x = 1\n"})
    crash = (sys.executable, "-c", "import sys; sys.stderr.write('ruff: bad rule'); sys.exit(2)")
    with pytest.raises(AgentError, match=r"codeQuality: .* exited with code 2: ruff: bad rule"):
        QualityAgent(ruff_cmd=crash).run(inp)


def test_slow_ruff_raises_agent_timeout(make_pr: MakePR) -> None:
    inp = make_pr(None, {"m.py": "x = 1\n"}, timeout=0.3)
    slow = (sys.executable, "-c", "import time; time.sleep(30)")
    with pytest.raises(AgentTimeout, match="codeQuality"):
        QualityAgent(ruff_cmd=slow).run(inp)


def test_no_python_changes_runs_no_tool(make_pr: MakePR) -> None:
    inp = make_pr({"a.txt": "1\n"}, {"a.txt": "2\n"})
    missing = ("/nonexistent/ruff",)
    assert QualityAgent(ruff_cmd=missing).run(inp) == []
