"""Rule files in Prometheus's format: the model, loading and validation.

A file holds ``groups``; a group has a ``name``, an optional ``interval`` and ``limit``, and
``rules``, each either an alerting rule (``alert``, ``expr``, ``for``, ``keep_firing_for``,
``labels``, ``annotations``) or a recording rule (``record``, ``expr``, ``labels``).
Validation follows Prometheus's ``rulefmt`` (unknown fields are errors, as with promtool's
strict YAML) and adds what promtool checks later or not at all: the expression parses with
our engine and yields a vector or scalar, and every template parses. Each problem is named
by file, group and rule, and all of a file's problems are reported at once.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from codequal.alerting.templates import TemplateError, check_template
from codequal.exceptions import InvalidInput
from codequal.tsdb.promql import PromQLError, parse_duration_ms
from codequal.tsdb.promql.ast_adapter import parse as parse_promql
from codequal.tsdb.promql.ast_adapter import value_type

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_GROUP_FIELDS = frozenset({"name", "interval", "limit", "rules"})
_RULE_FIELDS = frozenset(
    {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
)
DEFAULT_RULES_DIR = "default_rules"  # package data next to this module


class RuleFileError(InvalidInput):
    """A rule file that cannot be used; ``problems`` lists every reason, one per line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True)
class AlertingRule:
    """An ``alert:`` rule; label values and annotations are Go templates."""

    alert: str
    expr: str
    for_seconds: float = 0.0
    keep_firing_for_seconds: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.alert


@dataclass(frozen=True)
class RecordingRule:
    """A ``record:`` rule: its result is stored as new series named ``record``."""

    record: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.record


Rule: TypeAlias = AlertingRule | RecordingRule


@dataclass(frozen=True)
class RuleGroup:
    """Rules evaluated together, in order, every ``interval_seconds`` (None: the default)."""

    name: str
    rules: tuple[Rule, ...]
    interval_seconds: float | None = None
    limit: int = 0
    source: str = ""

    @property
    def key(self) -> str:
        """Unique across files, as Prometheus keys groups: ``file;name``."""
        return f"{self.source};{self.name}"


def rule_key(rule: Rule) -> str:
    """A rule's identity in evaluation state: its kind, name and static labels (like the
    name-and-labels match Prometheus uses to carry state over a reload)."""
    kind = "alert" if isinstance(rule, AlertingRule) else "record"
    labels = ",".join(f"{k}={v}" for k, v in sorted(rule.labels.items()))
    return f"{kind}:{rule.name}{{{labels}}}"


# -- loading ----------------------------------------------------------------------------------


def default_rule_files() -> list[Path]:
    """The rule files shipped in the package (``codequal/alerting/default_rules``)."""
    root = resources.files("codequal.alerting") / DEFAULT_RULES_DIR
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".rules.yml"))


def expand_rule_paths(patterns: Iterable[str | Path]) -> list[Path]:
    """Paths and globs (as in ``CODEQUAL_RULE_FILES``) to files; a pattern that matches
    nothing is an error, so a typo does not silently drop rules."""
    paths: list[Path] = []
    for pattern in patterns:
        text = str(pattern).strip()
        if not text:
            continue
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            raise RuleFileError(text, ["no file matches this pattern"])
        paths += [Path(m) for m in matches]
    return paths


def load_rule_files(patterns: Iterable[str | Path]) -> list[RuleGroup]:
    """Load and validate every file (globs allowed); errors from all files are collected."""
    groups: list[RuleGroup] = []
    problems: list[str] = []
    for path in expand_rule_paths(patterns):
        try:
            groups += load_rule_file(path)
        except RuleFileError as exc:
            problems += [f"{exc.source}: {p}" for p in exc.problems]
    if problems:
        raise RuleFileError("rule files", problems)
    return groups


def load_rule_file(path: str | Path) -> list[RuleGroup]:
    """Read and validate one rule file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(source, [f"cannot read the file: {exc}"]) from exc
    return parse_rule_file(text, source)


def parse_rule_file(text: str, source: str = "<string>") -> list[RuleGroup]:
    """Validate rule-file text and return its groups, or raise :class:`RuleFileError`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(source, [f"not valid YAML: {exc}"]) from exc
    if document is None:
        return []  # Prometheus accepts an empty rule file
    if not isinstance(document, dict) or set(document) - {"groups"}:
        extra = sorted(set(document) - {"groups"}) if isinstance(document, dict) else []
        what = f"unknown field(s) {', '.join(map(str, extra))}" if extra else "not a mapping"
        raise RuleFileError(source, [f"{what}: a rule file is a mapping with one key, groups"])
    collector = _Problems()
    groups = _groups(document.get("groups") or [], collector)
    if collector.items:
        raise RuleFileError(source, collector.items)
    return [RuleGroup(g.name, g.rules, g.interval_seconds, g.limit, source) for g in groups]


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)

    def add(self, where: str, problem: str) -> None:
        self.items.append(f"{where}: {problem}")


def _groups(raw: Any, problems: _Problems) -> list[RuleGroup]:
    if not isinstance(raw, list):
        problems.add("groups", "must be a list of groups")
        return []
    groups, seen = [], set()
    for i, item in enumerate(raw, 1):
        group = _group(item, i, problems)
        if group is None:
            continue
        if group.name in seen:
            problems.items.append(f'groupname: "{group.name}" is repeated in the same file')
        seen.add(group.name)
        groups.append(group)
    return groups


def _group(raw: Any, index: int, problems: _Problems) -> RuleGroup | None:
    if not isinstance(raw, dict):
        problems.add(f"group {index}", "must be a mapping with name and rules")
        return None
    name = raw.get("name")
    where = f'group "{name}"' if name else f"group {index}"
    for key in sorted(set(map(str, raw)) - _GROUP_FIELDS):
        problems.add(where, f"unknown field {key!r} (allowed: interval, limit, name, rules)")
    if not isinstance(name, str) or not name:
        problems.add(where, "the group name must not be empty")
    interval = _duration(raw.get("interval"), where, "interval", problems)
    if interval == 0:
        interval = None  # Prometheus: a zero interval means the global default
    limit = raw.get("limit", 0) or 0
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        problems.add(where, f"limit must be a non-negative integer, not {limit!r}")
        limit = 0
    rules_raw = raw.get("rules") or []
    if not isinstance(rules_raw, list):
        problems.add(where, "rules must be a list")
        rules_raw = []
    rules = [_rule(r, where, i, problems) for i, r in enumerate(rules_raw, 1)]
    kept = tuple(r for r in rules if r is not None)
    return RuleGroup(str(name or ""), kept, interval, limit)


def _duration(value: Any, where: str, what: str, problems: _Problems) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration_ms(str(value)) / 1000
    except PromQLError:
        problems.add(where, f'{what} {value!r} is not a duration such as "5m", "1h30m" or "90s"')
        return None


def _rule(raw: Any, group: str, index: int, problems: _Problems) -> Rule | None:
    if not isinstance(raw, dict):
        problems.add(f"{group}, rule {index}", "must be a mapping")
        return None
    record, alert = raw.get("record"), raw.get("alert")
    where = f'{group}, rule {index}, "{record or alert or ""}"'
    before = len(problems.items)
    for key in sorted(set(map(str, raw)) - _RULE_FIELDS):
        problems.add(where, f"unknown field {key!r}")
    if record and alert:
        problems.add(where, "only one of 'record' and 'alert' must be set")
    elif not record and not alert:
        problems.add(where, "one of 'record' or 'alert' must be set")
    expr = _expression(raw.get("expr"), where, problems)
    labels = _string_map(raw.get("labels"), where, "labels", problems)
    base = RecordingRule(str(record or ""), expr, labels)
    rule: Rule = (
        _recording(raw, base, where, problems)
        if record
        else _alerting(raw, str(alert or ""), base, where, problems)
    )
    return rule if len(problems.items) == before else None


def _expression(expr: Any, where: str, problems: _Problems) -> str:
    if expr is None or str(expr).strip() == "":
        problems.add(where, "field 'expr' must be set in rule")
        return ""
    text = str(expr)
    try:
        kind = value_type(parse_promql(text))
    except PromQLError as exc:
        problems.add(where, f"could not parse expression: {exc.message}")
        return text
    if kind not in ("vector", "scalar"):
        problems.add(where, f"the expression returns a {kind}; a rule needs a vector or scalar")
    return text


def _string_map(raw: Any, where: str, what: str, problems: _Problems) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(where, f"{what} must be a mapping of names to strings")
        return {}
    # YAML reads `threshold: 0.9` as a number; Prometheus keeps the text, and so do we.
    out = {str(k): _scalar_text(v) for k, v in raw.items()}
    for name in out:
        if not _LABEL_NAME.fullmatch(name) or (what == "labels" and name == "__name__"):
            noun = "label" if what == "labels" else "annotation"
            problems.add(where, f"invalid {noun} name: {name}")
    return out


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _recording(
    raw: Mapping[str, Any], rule: RecordingRule, where: str, problems: _Problems
) -> RecordingRule:
    for key in ("annotations", "for", "keep_firing_for"):
        if raw.get(key):
            problems.add(where, f"invalid field '{key}' in recording rule")
    if not _METRIC_NAME.fullmatch(rule.record):
        problems.add(where, f"invalid recording rule name: {rule.record}")
    return rule


def _alerting(
    raw: Mapping[str, Any], alert: str, base: RecordingRule, where: str, problems: _Problems
) -> AlertingRule:
    """``base`` carries the expression and labels parsed for either kind of rule."""
    labels = dict(base.labels)
    annotations = _string_map(raw.get("annotations"), where, "annotations", problems)
    texts = [("label", labels), ("annotation", annotations)]
    for noun, mapping in texts:
        for name, text in mapping.items():
            try:
                check_template(text, alert)
            except TemplateError as exc:
                problems.add(where, f'{noun} "{name}": {exc}')
    for_s = _duration(raw.get("for"), where, "for", problems) or 0.0
    keep_s = _duration(raw.get("keep_firing_for"), where, "keep_firing_for", problems) or 0.0
    return AlertingRule(alert, base.expr, for_s, keep_s, labels, annotations)


# -- writing ----------------------------------------------------------------------------------

_UNITS = (
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
)


def format_duration(seconds: float) -> str:
    """Prometheus's duration spelling (``model.Duration.String``): 90 s is ``1m30s``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """One rule in rule-file form (empty optional fields left out)."""
    out: dict[str, Any]
    if isinstance(rule, RecordingRule):
        out = {"record": rule.record, "expr": rule.expr}
    else:
        out = {"alert": rule.alert, "expr": rule.expr}
        if rule.for_seconds:
            out["for"] = format_duration(rule.for_seconds)
        if rule.keep_firing_for_seconds:
            out["keep_firing_for"] = format_duration(rule.keep_firing_for_seconds)
    if rule.labels:
        out["labels"] = dict(rule.labels)
    if isinstance(rule, AlertingRule) and rule.annotations:
        out["annotations"] = dict(rule.annotations)
    return out


def groups_to_document(groups: Iterable[RuleGroup]) -> dict[str, Any]:
    """A rule-file document (``{"groups": [...]}``) for ``yaml.safe_dump``."""
    out = []
    for group in groups:
        entry: dict[str, Any] = {"name": group.name}
        if group.interval_seconds:
            entry["interval"] = format_duration(group.interval_seconds)
        if group.limit:
            entry["limit"] = group.limit
        entry["rules"] = [rule_to_dict(r) for r in group.rules]
        out.append(entry)
    return {"groups": out}
