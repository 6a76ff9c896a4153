"""Rule unit tests in ``promtool test rules`` format, run on our engine and evaluator.

The same test file must pass here and under promtool (that is how we know the two engines
agree), so the runner reproduces promtool's procedure (``cmd/promtool/unittest.go``, 2.42):
rules are evaluated at 0, ``evaluation_interval``, 2x ... up to the latest ``eval_time``,
each step seeing only the input samples up to that step; an ``alert_rule_test`` compares the
*firing* alerts of the step at or just before its ``eval_time``; a ``promql_expr_test`` is
queried after the last step; values compare exactly. Failures are worded as promtool words
them.
"""

from __future__ import annotations

import glob
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from codequal.alerting.evaluator import evaluate
from codequal.alerting.gofmt import format_float
from codequal.alerting.rules import RuleFileError, RuleGroup, load_rule_file, rule_key
from codequal.alerting.rules import format_duration as _format_duration
from codequal.alerting.state import EvaluationState
from codequal.exceptions import InvalidInput
from codequal.tsdb import promql
from codequal.tsdb.promql import (
    Engine,
    InMemorySource,
    Labels,
    PromQLError,
    Series,
    load_series,
    parse_duration_ms,
    parse_series_labels,
)

_FILE_FIELDS = frozenset({"rule_files", "evaluation_interval", "group_eval_order", "tests"})
_GROUP_FIELDS = frozenset(
    {
        "interval",
        "input_series",
        "alert_rule_test",
        "promql_expr_test",
        "external_labels",
        "external_url",
        "name",
    }
)
# Prometheus's lexer refuses hexadecimal in series descriptions ("the syntax is ambiguous"),
# so `0x9` is zero repeated, as `1x9` is one repeated; the shared notation parser reads it as
# the number 9, so spell it unambiguously before handing it over.
_HEX_LOOKALIKE = re.compile(r"(^|\s)[+]?0[xX](\d+)(?=\s|$)")
_YAML_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


class TestFileError(InvalidInput):
    """A test file that cannot be run (unreadable, not YAML, unknown fields)."""


@dataclass(frozen=True)
class TestFileResult:
    """The outcome of one test file: promtool's error texts, empty when it passed."""

    path: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors


def format_duration(ms: int) -> str:
    """``model.Duration.String`` for milliseconds."""
    return _format_duration(ms / 1000)


def run_test_file(path: str | Path) -> TestFileResult:
    """Run every test group in one promtool-format file."""
    source = str(path)
    try:
        doc = _load(Path(path))
        rule_files, warnings = _rule_files(Path(path).parent, doc.get("rule_files") or [])
        interval_ms = parse_duration_ms(str(doc.get("evaluation_interval") or "1m"))
        groups = [g for f in rule_files for g in load_rule_file(f)]
    except (TestFileError, PromQLError, RuleFileError) as exc:
        return TestFileResult(source, [str(exc)])
    groups = _ordered(groups, doc.get("group_eval_order") or [])
    errors: list[str] = []
    for test in doc.get("tests") or []:
        errors += _run_group(test, groups, interval_ms or 60_000)
    return TestFileResult(source, errors, warnings)


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TestFileError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise TestFileError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise TestFileError(f"{path}: a test file is a mapping (rule_files, tests, ...)")
    _strict(doc, _FILE_FIELDS, "main.unitTestFile")
    return doc


def _strict(doc: Mapping[str, Any], allowed: frozenset[str], type_name: str) -> None:
    unknown = sorted(set(map(str, doc)) - allowed)
    if unknown:
        lines = "\n".join(f"  field {k} not found in type {type_name}" for k in unknown)
        raise TestFileError(f"yaml: unmarshal errors:\n{lines}")


def _rule_files(base: Path, patterns: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Rule files relative to the test file; a pattern matching nothing is only a warning,
    as in promtool."""
    files: list[Path] = []
    warnings: list[str] = []
    for pattern in patterns:
        full = str(base / str(pattern))
        matches = sorted(glob.glob(full))
        if not matches:
            warnings.append(f"no file match pattern {full}")
        files += [Path(m) for m in matches]
    return files, warnings


def _ordered(groups: list[RuleGroup], order: Sequence[str]) -> list[RuleGroup]:
    # promtool sorts by the listed position; a group not listed counts as position 0.
    rank = {name: i for i, name in enumerate(order)}
    return sorted(groups, key=lambda g: rank.get(g.name, 0))


# -- one test group ---------------------------------------------------------------------------


@dataclass
class _Run:
    """The storage and state of one test group while its steps are evaluated."""

    inputs: InMemorySource
    recorded: InMemorySource = field(default_factory=InMemorySource)
    horizon: int = 0  # promtool has loaded input samples up to here

    def select(self, matchers: Sequence[promql.Matcher], start: int, end: int) -> list[Series]:
        seen = self.inputs.select(matchers, start, min(end, self.horizon))
        extra = {s.labels: s for s in self.recorded.select(matchers, start, end)}
        out = [s if s.labels not in extra else _merge(s, extra.pop(s.labels)) for s in seen]
        return out + list(extra.values())

    def append(self, samples: Iterable[promql.Sample]) -> None:
        for s in samples:
            self.recorded.add(s.labels, [s.t], [s.value])


def _merge(a: Series, b: Series) -> Series:
    merged = dict(zip(a.timestamps, a.values, strict=True))
    merged.update(zip(b.timestamps, b.values, strict=True))
    order = sorted(merged)
    return Series(a.labels, order, [merged[t] for t in order])


def _run_group(test: Any, groups: list[RuleGroup], interval_ms: int) -> list[str]:
    try:
        if not isinstance(test, dict):
            raise TestFileError("each entry of tests must be a mapping")
        _strict(test, _GROUP_FIELDS, "main.testGroup")
        run = _Run(_inputs(test))
        alert_tests = _alert_tests(test)
    except (TestFileError, PromQLError) as exc:
        return [str(exc)]
    steps = [replace(g, interval_seconds=interval_ms / 1000) for g in groups]
    engine = Engine(run, default_step_ms=interval_ms)
    context = _GroupContext(test, steps, engine, interval_ms)
    errors = context.evaluate_steps(run, alert_tests)
    if errors is not None:
        return errors
    return context.alert_errors + [e for case in _expr_tests(test) for e in context.expr(case)]


def _inputs(test: Mapping[str, Any]) -> InMemorySource:
    interval_ms = parse_duration_ms(str(test.get("interval") or "0"))
    source = InMemorySource()
    for entry in test.get("input_series") or []:
        values = _HEX_LOOKALIKE.sub(r"\g<1>0+0x\g<2>", str(entry.get("values", "")))
        s = load_series(str(entry["series"]), values, interval_ms)
        if interval_ms == 0 and len(s.timestamps) > 1:
            # Without an interval every sample lands on t=0 and promtool keeps the first.
            s = Series(s.labels, s.timestamps[:1], s.values[:1])
        source.add(s.labels, s.timestamps, s.values)
    return source


def _alert_tests(test: Mapping[str, Any]) -> dict[int, list[Mapping[str, Any]]]:
    by_time: dict[int, list[Mapping[str, Any]]] = {}
    for case in test.get("alert_rule_test") or []:
        if not case.get("alertname"):
            where = f" (in TestGroup {test['name']})" if test.get("name") else ""
            raise TestFileError(
                "an item under alert_rule_test misses required attribute alertname at "
                f"eval_time {case.get('eval_time', '0s')}{where}"
            )
        t = parse_duration_ms(str(case.get("eval_time") or "0s"))
        by_time.setdefault(t, []).append(case)
    return by_time


def _expr_tests(test: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(test.get("promql_expr_test") or [])


def _max_eval_ms(test: Mapping[str, Any]) -> int:
    cases = [*(test.get("alert_rule_test") or []), *_expr_tests(test)]
    return max((parse_duration_ms(str(c.get("eval_time") or "0s")) for c in cases), default=0)


@dataclass
class _GroupContext:
    test: Mapping[str, Any]
    groups: list[RuleGroup]
    engine: Engine
    interval_ms: int
    state: EvaluationState = field(default_factory=EvaluationState)
    alert_errors: list[str] = field(default_factory=list)

    def evaluate_steps(
        self, run: _Run, alert_tests: Mapping[int, list[Mapping[str, Any]]]
    ) -> list[str] | None:
        """Evaluate every step; on a rule error, promtool's errors (and stop)."""
        pending = sorted(alert_tests)
        external = {str(k): str(v) for k, v in (self.test.get("external_labels") or {}).items()}
        for ts in range(0, _max_eval_ms(self.test) + 1, self.interval_ms):
            run.horizon = ts
            result = evaluate(
                self.groups,
                self.engine,
                self.state,
                ts / 1000,
                external_labels=external,
                external_url=str(self.test.get("external_url") or ""),
            )
            self.state = result.state
            run.append(result.samples)
            failures = self._rule_errors(ts)
            if failures:
                return self.alert_errors + failures
            while pending and ts <= pending[0] < ts + self.interval_ms:
                for case in alert_tests[pending.pop(0)]:
                    self.alert_errors += self._check_alerts(case)
        return None

    def _rule_errors(self, ts: int) -> list[str]:
        out = []
        for group in self.groups:
            errors = self.state.groups[group.key].errors
            for rule in group.rules:
                message = errors.get(rule_key(rule))
                if message is not None:
                    when = format_duration(ts)
                    out.append(f"    rule: {rule.name}, time: {when}, err: {message}")
        return out

    def _check_alerts(self, case: Mapping[str, Any]) -> list[str]:
        name = str(case["alertname"])
        got = sorted(
            (Labels.of(a.labels), Labels.of(a.annotations))
            for a in self.state.alerts()
            if a.status == "firing" and a.name == name
        )
        expected = sorted(
            (
                Labels.of({**_strings(e.get("exp_labels")), "alertname": name}),
                Labels.of(_strings(e.get("exp_annotations"))),
            )
            for e in case.get("exp_alerts") or []
        )
        if got == expected:
            return []
        heading = f"    name: {self.test['name']},\n" if self.test.get("name") else ""
        when = format_duration(parse_duration_ms(str(case.get("eval_time") or "0s")))
        exp = _indent(_alerts_text(expected), " " * 12)
        found = _indent(_alerts_text(got), " " * 12)
        body = f"    alertname: {name}, time: {when}, \n        exp:{exp}, \n        got:{found}"
        return [heading + body]

    def expr(self, case: Mapping[str, Any]) -> list[str]:
        """One promql_expr_test, queried after the last step as promtool does."""
        expr = str(case.get("expr", ""))
        eval_ms = parse_duration_ms(str(case.get("eval_time") or "0s"))
        head = f'    expr: "{_go_escape(expr)}", time: {format_duration(eval_ms)}'
        try:
            got = _vector(self.engine.instant(expr, eval_ms))
        except PromQLError as exc:
            return [f"{head}, err: {exc.message}"]
        expected: list[tuple[Labels, float]] = []
        for sample in case.get("exp_samples") or []:
            text = str(sample.get("labels", ""))
            try:
                labels = _parse_labels(text)
            except PromQLError as exc:
                return [f'{head}, err: labels "{_go_escape(text)}": {exc.message}']
            expected.append((labels, _yaml_float(sample.get("value", 0))))
        expected.sort(key=lambda p: p[0])
        if len(got) == len(expected) and all(
            g[0] == e[0] and g[1] == e[1] for g, e in zip(got, expected, strict=True)
        ):
            return []
        return [
            f"{head},\n        exp: {_samples_text(expected)}\n        got: {_samples_text(got)}"
        ]


def _vector(result: object) -> list[tuple[Labels, float]]:
    if isinstance(result, promql.Scalar):
        return [(Labels(), result.value)]
    if not isinstance(result, promql.Vector):
        raise PromQLError("rule result is not a vector or scalar")
    return sorted(((s.labels, s.value) for s in result), key=lambda p: p[0])


def _parse_labels(text: str) -> Labels:
    if text.strip() in ("", "{}"):
        return Labels()
    return parse_series_labels(text)


def _yaml_float(value: Any) -> float:
    """A float as Go's YAML reads ``value:`` (``.inf``, ``-.Inf``, ``.nan`` included)."""
    if isinstance(value, str) and value.lower() in _YAML_SPECIAL_FLOATS:
        return _YAML_SPECIAL_FLOATS[value.lower()]
    return float(value)


def _strings(raw: Any) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in (raw or {}).items()}


def _go_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _alerts_text(alerts: list[tuple[Labels, Labels]]) -> str:
    if not alerts:
        return "[]"
    items = [
        f"{i}:" + _indent(f"\nLabels:{labels}\nAnnotations:{annotations}", "  ")
        for i, (labels, annotations) in enumerate(alerts)
    ]
    return "[\n" + ",\n".join(items) + "\n]"


def _indent(lines: str, indent: str) -> str:
    """promtool's ``indentLines``: every line after the first gets ``indent``."""
    return ("\n" + indent).join(lines.split("\n"))


def _samples_text(samples: list[tuple[Labels, float]]) -> str:
    if not samples:
        return "nil"
    return ", ".join(f"{labels} {format_float(value, 'E')}" for labels, value in samples)
