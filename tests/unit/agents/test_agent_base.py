"""The shared agent contract: severities, records, changed files, tool runner, deadlines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from codequal.analysis.agents.base import (
    AgentError,
    AgentInput,
    AgentTimeout,
    ChangedFile,
    Deadline,
    Finding,
    introduced,
    parse_name_status,
    parse_severity,
    run_tool,
    severity_at_least,
)


def test_severity_at_least_orders_critical_high_medium_low_info() -> None:
    order = ["info", "low", "medium", "high", "critical"]
    for i, lower in enumerate(order):
        for higher in order[i:]:
            assert severity_at_least(higher, lower)  # type: ignore[arg-type]
        for higher in order[i + 1 :]:
            assert not severity_at_least(lower, higher)  # type: ignore[arg-type]


def test_parse_severity_accepts_any_case_and_names_choices_when_unknown() -> None:
    assert parse_severity(" HIGH ") == "high"
    with pytest.raises(ValueError, match="critical, high, medium, low, info"):
        parse_severity("severe")


def test_finding_to_dict_has_exactly_the_report_keys() -> None:
    finding = Finding("high", "a.py", 3, "B602", "shell", "security")
    assert finding.to_dict() == {
        "severity": "high",
        "file": "a.py",
        "line": 3,
        "rule": "B602",
        "message": "shell",
        "agent": "security",
    }


def test_parse_name_status_maps_git_codes_to_statuses() -> None:
    text = (
        "A\tnew.py\nM\tmod.py\nD\tgone.py\nR087\told.py\tmoved.py\nC100\tsrc.py\tcopy.py\nT\tlink\n"
    )
    assert parse_name_status(text) == (
        ChangedFile("new.py", "added"),
        ChangedFile("mod.py", "modified"),
        ChangedFile("gone.py", "deleted"),
        ChangedFile("moved.py", "renamed", "old.py"),
        ChangedFile("copy.py", "added"),
        ChangedFile("link", "modified"),
    )


def test_base_path_is_old_path_for_renames_and_none_for_additions() -> None:
    assert ChangedFile("b.py", "renamed", "a.py").base_path == "a.py"
    assert ChangedFile("b.py", "modified").base_path == "b.py"
    assert ChangedFile("b.py", "added").base_path is None


def test_present_skips_deleted_files_and_filters_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b.txt").write_text("")
    changed = (
        ChangedFile("a.py", "modified"),
        ChangedFile("b.txt", "added"),
        ChangedFile("c.py", "deleted"),
    )
    inp = AgentInput(tmp_path, None, changed, 10)
    assert [c.path for c in inp.present()] == ["a.py", "b.txt"]
    assert [c.path for c in inp.present((".py",))] == ["a.py"]


def test_introduced_subtracts_base_keys_as_a_multiset() -> None:
    f1, f2, f3 = (Finding("low", "a.py", n, "E1", "m", "x") for n in (1, 2, 3))
    head = [(f1, "same"), (f2, "same"), (f3, "other")]
    assert introduced(head, ["same"]) == [f2, f3]


def test_run_tool_returns_stdout_for_an_accepted_exit_code(tmp_path: Path) -> None:
    args = [sys.executable, "-c", "import sys; print('found'); sys.exit(1)"]
    assert run_tool(args, tmp_path, 30, agent="x", ok_codes=(0, 1)).strip() == "found"


def test_run_tool_timeout_raises_agent_timeout(tmp_path: Path) -> None:
    args = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(AgentTimeout, match=r"^slow: .* did not finish within 0.2 s") as exc:
        run_tool(args, tmp_path, 0.2, agent="slow")
    assert exc.value.agent == "slow"


def test_run_tool_crash_raises_agent_error_with_exit_code_and_stderr(tmp_path: Path) -> None:
    args = [sys.executable, "-c", "import sys; sys.stderr.write('boom: bad config'); sys.exit(2)"]
    with pytest.raises(AgentError, match="exited with code 2: boom: bad config") as exc:
        run_tool(args, tmp_path, 30, agent="codeQuality", ok_codes=(0, 1))
    assert not isinstance(exc.value, AgentTimeout)


def test_run_tool_missing_executable_raises_agent_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="could not start no-such-tool-xyz"):
        run_tool(["no-such-tool-xyz"], tmp_path, 30, agent="x")


def test_deadline_with_no_time_left_raises_agent_timeout() -> None:
    with pytest.raises(AgentTimeout, match="performance: did not finish within 0 s"):
        Deadline.start("performance", 0).remaining()


def test_parse_name_status_reads_nul_separated_output_with_unusual_paths() -> None:
    text = "M\0caf\u00e9 menu.py\0R100\0old\tname.py\0new.py\0D\0gone.py\0"
    assert parse_name_status(text) == (
        ChangedFile("caf\u00e9 menu.py", "modified"),
        ChangedFile("new.py", "renamed", "old\tname.py"),
        ChangedFile("gone.py", "deleted"),
    )
