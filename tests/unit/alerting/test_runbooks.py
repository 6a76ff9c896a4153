"""Every shipped alert has a runbook with the sections an on-call engineer needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codequal.alerting.rules import AlertingRule, default_rule_files, load_rule_files

RUNBOOKS = Path(__file__).resolve().parents[3] / "docs" / "runbooks"
SECTIONS = (
    "What it means",
    "How to confirm",
    "Likely causes",
    "What to do",
    "How to verify recovery",
)
SHIPPED = sorted(
    r.alert
    for g in load_rule_files(default_rule_files())
    for r in g.rules
    if isinstance(r, AlertingRule)
)


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.M)
    return {title: body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize("alert", SHIPPED)
def test_shipped_alert_has_a_runbook_with_every_section(alert: str) -> None:
    path = RUNBOOKS / f"{alert}.md"
    assert path.is_file(), f"docs/runbooks/{alert}.md is missing"
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"# {alert}\n")
    found = sections(text)
    missing = [s for s in SECTIONS if not found.get(s, "").strip()]
    assert not missing, f"{path.name} lacks sections: {missing}"


@pytest.mark.parametrize("alert", SHIPPED)
def test_runbook_confirms_with_exact_promql_and_cli_commands(alert: str) -> None:
    confirm = sections((RUNBOOKS / f"{alert}.md").read_text(encoding="utf-8"))["How to confirm"]
    assert "```promql" in confirm, "give the exact PromQL"
    assert "```sh" in confirm, "give the exact commands"
    assert "codequal_" in confirm
