"""The agent registry, the agents each mode runs, and how ``auto`` picks a mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from codequal.analysis.agents import (
    AGENTS,
    MODE_AGENTS,
    AgentInput,
    AgentTimeout,
    ChangedFile,
    choose_mode,
    is_security_sensitive,
)


def files(*paths: str) -> list[ChangedFile]:
    return [ChangedFile(p, "modified") for p in paths]


def test_registry_holds_the_five_agents_under_their_report_names() -> None:
    assert list(AGENTS) == ["security", "codeQuality", "performance", "dependency", "architecture"]
    for key, agent in AGENTS.items():
        assert agent.name == key
        assert agent.provider == "local"


def test_modes_name_registered_agents_quick_runs_security_and_quality() -> None:
    assert MODE_AGENTS["quick"] == ("security", "codeQuality")
    assert set(MODE_AGENTS["comprehensive"]) == set(AGENTS)
    assert MODE_AGENTS["deep"] == MODE_AGENTS["comprehensive"]


def test_small_ordinary_diff_is_quick_and_says_why() -> None:
    assert choose_mode(files("src/app/views.py", "README.md"), 40) == (
        "quick",
        "40 lines in 2 files (at most 400 lines and 20 files), no security-sensitive files",
    )


def test_security_sensitive_files_make_it_comprehensive_and_are_named() -> None:
    changed = files("src/app/auth/login.py", "docs/x.md", "Dockerfile")
    assert choose_mode(changed, 5) == (
        "comprehensive",
        "security-sensitive files changed: src/app/auth/login.py, Dockerfile",
    )


def test_many_sensitive_files_are_summarised() -> None:
    mode, reason = choose_mode(files(*(f"crypto/k{i}.py" for i in range(7))), 5)
    assert mode == "comprehensive"
    assert reason.endswith("crypto/k4.py and 2 more")


def test_more_than_400_lines_is_comprehensive() -> None:
    assert choose_mode(files("a.py"), 401) == (
        "comprehensive",
        "401 lines changed (more than 400)",
    )
    assert choose_mode(files("a.py"), 400)[0] == "quick"


def test_more_than_20_files_is_comprehensive() -> None:
    assert choose_mode(files(*(f"m{i}.py" for i in range(21))), 50) == (
        "comprehensive",
        "21 files changed (more than 20)",
    )


def test_more_than_2000_lines_is_deep_even_when_sensitive() -> None:
    assert choose_mode(files("auth.py"), 2001) == ("deep", "2001 lines changed (more than 2000)")


@pytest.mark.parametrize(
    ("path", "sensitive"),
    [
        ("app/auth.py", True),
        ("app/settings/base.py", True),
        ("lib/crypto_utils.py", True),
        (".github/workflows/ci.yml", True),
        ("docker/Dockerfile.prod", True),
        ("requirements-dev.txt", True),
        ("web/package-lock.json", True),
        ("certs/server.pem", True),
        (".env.production", True),
        ("app/author.py", False),
        ("app/tokenizer.py", False),
        ("docs/index.md", False),
    ],
)
def test_security_sensitive_paths_match_whole_words(path: str, sensitive: bool) -> None:
    assert is_security_sensitive(path) is sensitive


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_agent_raises_agent_timeout_when_its_budget_is_spent(
    name: str, make_pr: Callable[..., AgentInput]
) -> None:
    inp = make_pr(None, {"m.py": "import os\n", "requirements.txt": "flask\n"}, timeout=0)
    with pytest.raises(AgentTimeout, match=f"^{name}: "):
        AGENTS[name].run(inp)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_no_agent_follows_a_symlink_out_of_the_checked_out_tree(name: str, tmp_path: Path) -> None:
    outside = tmp_path / "host-file"
    outside.write_text('password = "kX9#' + 'vQ2!mP7$zR4@wL"\nimport subprocess\n')
    head = tmp_path / "head"
    head.mkdir()
    for link in ("leak.py", "requirements.txt"):
        (head / link).symlink_to(outside)
    changed = (ChangedFile("leak.py", "added"), ChangedFile("requirements.txt", "added"))
    assert AGENTS[name].run(AgentInput(head, None, changed, 30)) == []
