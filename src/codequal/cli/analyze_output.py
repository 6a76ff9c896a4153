"""How ``codequal analyze`` prints a report: text for people, workflow commands for GitHub.

Text groups one rule firing many times in one file into a single row ("B033 x 7 276 in
long_set.py, first at line 3", with a multiplication sign); JSON and SARIF keep every finding.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import click
from rich.table import Table

from codequal.cli.common import output_console

TIMES = "\N{MULTIPLICATION SIGN}"
GROUP_AT = 4  # this many findings of one rule in one file print as one row
GITHUB_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "notice",
                "info": "notice"}  # fmt: skip


def count(n: int) -> str:
    """7276 -> '7 276' (a thin grouping that reads in any locale)."""
    return f"{n:,}".replace(",", " ")


def grouped(findings: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Findings in report order, with every (rule, file) seen GROUP_AT times or more folded
    into its first finding and a count."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for f in findings:
        by_key[(f["rule"], f["file"])].append(f)
    rows: list[tuple[dict[str, Any], int]] = []
    for f in findings:
        same = by_key[(f["rule"], f["file"])]
        if len(same) < GROUP_AT:
            rows.append((f, 1))
        elif same[0] is f:
            first = min(same, key=lambda x: x["line"] or 0)
            rows.append((first, len(same)))
    return rows


def print_text(report: dict[str, Any], all_findings: bool) -> None:
    console = output_console()
    status = report["status"]
    colour = {"completed": "green", "partial": "yellow", "failed": "red", "rejected": "red"}
    summary = report.get("summary") or {}
    existing = sum((summary.get("existingCounts") or {}).values())
    console.print(
        f"[bold {colour.get(status, 'white')}]{status}[/] · mode {report.get('mode')} "
        f"({report.get('modeReason')}) · {len(report['findings'])} findings"
        + (f" (+{existing} existing)" if existing else "")
        + f" · ${report['cost'].get('total', 0):.6f}",
        highlight=False,
    )
    if report.get("error"):
        console.print(f"[red]{report['error']['type']}: {report['error']['message']}[/]")
    for note in summary.get("notes") or []:
        console.print(f"note: {note}", highlight=False)
    for reason in summary.get("partialReasons") or []:
        console.print(f"[yellow]partial: {reason}[/]", highlight=False)
    _print_coverage(console, report.get("coverage"))
    _print_findings(console, "findings introduced by this change", report["findings"])
    if all_findings and report.get("existingFindings"):
        _print_findings(console, "existing findings", report["existingFindings"])


def _print_coverage(console: Any, coverage: dict[str, Any] | None) -> None:
    if not coverage:
        return
    agents = ", ".join(
        f"{name} {a['analysed']}" + ("" if a["status"] == "ok" else f" ({a['status']})")
        for name, a in coverage["agents"].items()
    )
    skipped = coverage["skipped"]
    console.print(
        f"coverage: {coverage['filesChanged']} files changed, {coverage['filesAnalysed']} "
        f"analysed ({agents}), {len({s['file'] for s in skipped})} skipped",
        highlight=False,
    )
    if skipped:
        table = Table("skipped file", "agent", "reason", "detail", title="not analysed")
        for s in skipped:
            table.add_row(s["file"], s["agent"], s["reason"], s["detail"])
        console.print(table)


def _print_findings(console: Any, title: str, findings: list[dict[str, Any]]) -> None:
    if not findings:
        return
    table = Table("severity", "file", "line", "rule", "agent", "message", title=title)
    for f, n in grouped(findings):
        line = str(f["line"] or "")
        if n == 1:
            table.add_row(f["severity"], f["file"], line, f["rule"], f["agent"], f["message"])
        else:
            what = f"{f['rule']} {TIMES} {count(n)} in {f['file']}, first at line {line or '-'}"
            table.add_row(f["severity"], f["file"], line, f["rule"], f["agent"], what)
    console.print(table)


def print_github(report: dict[str, Any], all_findings: bool) -> None:
    """GitHub Actions workflow commands: one annotation per finding, warnings for gaps."""
    findings = report["findings"] + (report.get("existingFindings") or [] if all_findings else [])
    for f in findings:
        props = f"file={_prop(f['file'])}"
        if f["line"]:
            props += f",line={f['line']}"
        props += f",title={_prop(f['rule'] + ' (' + f['agent'] + ')')}"
        click.echo(f"::{GITHUB_LEVEL[f['severity']]} {props}::{_data(f['message'])}")
    for s in (report.get("coverage") or {}).get("skipped", []):
        if s.get("couldHide"):
            what = f"{s['agent']} did not fully analyse this file: {s['detail']}"
            click.echo(f"::warning file={_prop(s['file'])},title=not analysed::{_data(what)}")
    summary = report.get("summary") or {}
    for reason in summary.get("partialReasons") or []:
        click.echo(f"::warning title=partial analysis::{_data(reason)}")
    if report.get("error"):
        error = report["error"]
        click.echo(f"::error title=analysis {report['status']}::{_data(error['message'] or '')}")


def _data(text: str) -> str:
    """Escape a workflow command's message (GitHub's toolkit escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    """Escape a workflow command's property value (GitHub's toolkit escapeProperty)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")
