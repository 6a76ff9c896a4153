"""performance agent: radon complexity of new or worsened functions, maintainability index."""

from __future__ import annotations

from collections.abc import Callable

from codequal.analysis.agents.base import AgentInput, Finding
from codequal.analysis.agents.performance import (
    PerformanceAgent,
    blocks,
    complexity_findings,
    maintainability_findings,
)

MakePR = Callable[..., AgentInput]


def branchy(name: str, branches: int, indent: str = "") -> str:
    """A function of cyclomatic complexity ``branches + 1``."""
    body = "".join(
        f"{indent}    if x == {i}:\n{indent}        return {i}\n" for i in range(branches)
    )
    return f"{indent}def {name}(x):\n{body}{indent}    return -1\n"


def brief(findings: list[Finding]) -> list[tuple[str, str, int | None, str, str]]:
    return [(f.severity, f.file, f.line, f.rule, f.agent) for f in findings]


def test_new_functions_over_10_are_medium_and_over_20_high(make_pr: MakePR) -> None:
    head = branchy("simple", 3) + branchy("busy", 12) + branchy("tangled", 22)
    inp = make_pr({"README.md": "x\n"}, {"app/logic.py": head})
    findings = PerformanceAgent().run(inp)
    assert brief(findings) == [
        ("medium", "app/logic.py", 9, "cyclomatic-complexity", "performance"),
        ("high", "app/logic.py", 35, "cyclomatic-complexity", "performance"),
    ]
    assert findings[1].message == (
        "`tangled` has cyclomatic complexity 23 (threshold 10); split it into smaller functions"
    )


def test_unchanged_complex_function_that_moved_is_not_reported(make_pr: MakePR) -> None:
    base = branchy("tangled", 22)
    inp = make_pr({"app/logic.py": base}, {"app/logic.py": "import os\n\n\n" + base})
    assert PerformanceAgent().run(inp) == []


def test_function_that_got_worse_is_reported_with_its_base_complexity(make_pr: MakePR) -> None:
    inp = make_pr({"m.py": branchy("grow", 15)}, {"m.py": branchy("grow", 16)})
    [finding] = PerformanceAgent().run(inp)
    assert finding.severity == "medium"
    assert "complexity 17 (threshold 10, was 16 in base)" in finding.message


def test_function_that_got_simpler_but_stays_complex_is_not_reported() -> None:
    assert complexity_findings("m.py", branchy("f", 25), branchy("f", 30)) == []


def test_methods_closures_and_inner_classes_have_qualified_names() -> None:
    source = (
        "class Outer:\n"
        + branchy("method", 1, "    ")
        + "    class Inner:\n"
        + branchy("deep", 1, "        ")
        + "def top(y):\n"
        + branchy("helper", 1, "    ")
        + "    return helper(y)\n"
    )
    assert sorted(blocks(source)) == ["Outer.Inner.deep", "Outer.method", "top", "top.helper"]


def test_thresholds_are_parameters(make_pr: MakePR) -> None:
    inp = make_pr(None, {"m.py": branchy("f", 4)})
    assert brief(PerformanceAgent(cc_medium=3, cc_high=4).run(inp)) == [
        ("high", "m.py", 1, "cyclomatic-complexity", "performance")
    ]


def test_low_maintainability_is_reported_when_new_or_worse() -> None:
    head = branchy("f", 30)
    [finding] = maintainability_findings("m.py", head, None, threshold=100)
    assert (finding.severity, finding.line, finding.rule) == ("low", None, "maintainability-index")
    worse = maintainability_findings("m.py", head, branchy("f", 5), threshold=100)
    assert [f.rule for f in worse] == ["maintainability-index"]
    assert "was " in worse[0].message
    assert maintainability_findings("m.py", head, head, threshold=100) == []
    assert maintainability_findings("m.py", head, None) == []  # default threshold 10


def test_file_that_does_not_parse_is_left_to_code_quality(make_pr: MakePR) -> None:
    inp = make_pr({"m.py": "x = 1\n"}, {"m.py": "def broken(:\n"})
    assert PerformanceAgent().run(inp) == []
