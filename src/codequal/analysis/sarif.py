"""An analysis as SARIF 2.1.0, the format GitHub code scanning and most CI tools read (pure).

One run whose driver is CodeQual: one rule per rule id found (bandit's and ruff's with their
documentation links), results with ``level``, a ``physicalLocation`` region, a
``partialFingerprints`` entry that survives code moving (the finding's fingerprint: rule,
file and normalised code around it) and ``baselineState`` (new / unchanged). The rules of
the security agent carry ``security-severity``, which GitHub turns into its severity. What the
analysis could not read becomes tool execution notifications.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from codequal import __version__
from codequal.analysis.store import AnalysisRecord
from codequal.vocabulary import FINDING_SEVERITIES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub: over 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "1.0"}
TAGS = {
    "security": ["security"],
    "codeQuality": ["correctness", "maintainability"],
    "performance": ["maintainability", "complexity"],
    "dependency": ["security", "supply-chain"],
    "architecture": ["maintainability", "architecture"],
}


def to_sarif(record: AnalysisRecord, all_findings: bool = False) -> dict[str, Any]:
    """The SARIF log of one finished analysis; existing findings with ``all_findings``."""
    findings = [f for f in record.findings if all_findings or f.get("new", True)]
    rules = _rules(findings)
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    seen: Counter[str] = Counter()
    results = [_result(f, index, seen) for f in findings]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "CodeQual",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": f"codequal/{record.mode or record.requested_mode}/"},
                "invocations": [_invocation(record)],
                "results": results,
                "properties": {"analysisId": record.id, "status": record.status},
            }
        ],
    }


def _rules(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    worst: dict[str, str] = {}
    first: dict[str, dict[str, Any]] = {}
    for f in findings:
        rule = f["rule"]
        first.setdefault(rule, f)
        if rule not in worst or _rank(f["severity"]) < _rank(worst[rule]):
            worst[rule] = f["severity"]
    return [_rule(rule, first[rule], worst[rule]) for rule in sorted(first)]


def _rank(severity: str) -> int:
    return FINDING_SEVERITIES.index(severity)


def _rule(rule: str, example: dict[str, Any], severity: str) -> dict[str, Any]:
    agent = example["agent"]
    properties: dict[str, Any] = {"tags": TAGS.get(agent, []), "agent": agent}
    if "security" in properties["tags"]:
        properties["security-severity"] = SECURITY_SEVERITY[severity]
    text = f"{rule} ({agent} agent)"
    described: dict[str, Any] = {
        "id": rule,
        "name": rule,
        "shortDescription": {"text": text},
        "fullDescription": {"text": _first_sentence(example["message"])},
        "help": {"text": f"{text}: {example['message']}"},
        "defaultConfiguration": {"level": LEVEL[severity]},
        "properties": properties,
    }
    if example.get("helpUri"):
        described["helpUri"] = example["helpUri"]
    return described


def _first_sentence(message: str) -> str:
    return message.split("; ", 1)[0][:1000] or message[:1000]


def _result(f: dict[str, Any], index: dict[str, int], seen: Counter[str]) -> dict[str, Any]:
    region: dict[str, int] = {"startLine": f["line"] or 1}
    if f.get("endLine") and f["line"] and f["endLine"] > f["line"]:
        region["endLine"] = f["endLine"]
    fingerprint = f.get("fingerprint") or f"{f['rule']}:{f['file']}:{f['line']}"
    seen[fingerprint] += 1
    return {
        "ruleId": f["rule"],
        "ruleIndex": index[f["rule"]],
        "level": LEVEL[f["severity"]],
        "message": {"text": f["message"]},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": f["file"], "uriBaseId": "%SRCROOT%"},
                    "region": region,
                }
            }
        ],
        "partialFingerprints": {
            "primaryLocationLineHash": f"{fingerprint}:{seen[fingerprint]}",
            "codequalFingerprint/v1": fingerprint,
        },
        "baselineState": "new" if f.get("new", True) else "unchanged",
        "properties": {"severity": f["severity"], "agent": f["agent"]},
    }


def _invocation(record: AnalysisRecord) -> dict[str, Any]:
    summary = record.summary or {}
    notes: list[dict[str, Any]] = []
    for skip in (summary.get("coverage") or {}).get("skipped", []):
        if skip.get("couldHide") is None:
            continue  # binary and excluded files are not gaps
        notes.append(_note("warning", skip["reason"], f"{skip['agent']} did not fully analyse "
                           f"{skip['file']}: {skip['detail']}", skip["file"]))  # fmt: skip
    for reason in summary.get("partialReasons", []):
        notes.append(_note("warning", "partial", reason))
    if record.status in ("failed", "rejected"):
        notes.append(_note("error", record.error_type or record.status, record.error_message or ""))
    return {
        "executionSuccessful": record.status in ("completed", "partial"),
        "toolExecutionNotifications": notes,
    }


def _note(level: str, kind: str, text: str, path: str | None = None) -> dict[str, Any]:
    note: dict[str, Any] = {"level": level, "descriptor": {"id": kind}, "message": {"text": text}}
    if path is not None:
        location = {"artifactLocation": {"uri": path, "uriBaseId": "%SRCROOT%"}}
        note["locations"] = [{"physicalLocation": location}]
    return note
