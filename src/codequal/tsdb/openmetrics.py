"""The OpenMetrics text format with timestamps, as ``promtool tsdb create-blocks-from
openmetrics`` reads it: a pure, line-numbered parser and validator (no I/O of its own).

Follows Prometheus 2.x's parser where the two could disagree: no blank lines or free-form
comments, no spaces inside ``{...}``, one space between fields, values and timestamps are Go
floats (no ``_``, no hex), timestamps are seconds truncated to milliseconds, only ``\\"``,
``\\\\`` and ``\\n`` are unescaped, and the text ends with ``# EOF``. Stricter than promtool
on purpose: a sample without a timestamp, a label given twice, and a sample older than (or
at the same time as but different from) the series' previous one are errors here, where
promtool would fail half-way or silently drop the sample.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from codequal.exceptions import InvalidInput
from codequal.tsdb.promql import Labels
from codequal.tsdb.series_index import label_problem

METRIC_TYPES = frozenset(
    {"counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown"}
)
MAX_SHOWN = 20

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_LVALUE = r'"(?:[^"\\\n]|\\.)*"'
_LABELS = rf"\{{(?:{_LNAME}={_LVALUE}(?:,{_LNAME}={_LVALUE})*)?\}}"
_SAMPLE = re.compile(
    rf"({_NAME})({_LABELS})? ([^ ]+)(?: ([^ ]+))?(?: # ({_LABELS}) ([^ ]+)(?: [^ ]+)?)?"
)
_PAIR = re.compile(rf'({_LNAME})="((?:[^"\\\n]|\\.)*)"')
_ESCAPE = re.compile(r'\\(["\\n])')
_META = re.compile(rf"# (HELP|TYPE|UNIT) ({_NAME})(?: (.*))?")
_UNESCAPED = {'"': '"', "\\": "\\", "n": "\n"}
_bits = struct.Struct("<d")


class Problem(NamedTuple):
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class OpenMetricsError(InvalidInput):
    """The text is not importable; ``problems`` are the first few, ``total`` counts all."""

    def __init__(self, problems: list[Problem], total: int) -> None:
        self.problems = problems
        self.total = total
        more = f" (and {total - len(problems)} more)" if total > len(problems) else ""
        super().__init__(f"{total} problem(s){more}: " + "; ".join(map(str, problems)))


class Sample(NamedTuple):
    line: int
    labels: Labels
    t: int  # milliseconds
    value: float


class Summary(NamedTuple):
    """What a valid text holds."""

    samples: int
    series: frozenset[Labels]
    min_t: int | None
    max_t: int | None


def go_float(text: str) -> float:
    """Parse a float as Go's strconv.ParseFloat does for Prometheus (no ``_``, no hex)."""
    if not text.isascii() or any(c in text for c in "pP_xX") or text != text.strip():
        raise ValueError(f"{text!r} is not a number")
    return float(text)


def parse_sample(line_no: int, line: str, cache: dict[str, Labels]) -> Sample:
    """One sample line; raises ValueError with a sentence saying what is wrong."""
    match = _SAMPLE.fullmatch(line)
    if match is None:
        raise ValueError(_why_not_a_sample(line))
    name, raw_labels, raw_value, raw_ts, exemplar, exemplar_value = match.groups()
    if raw_ts is None:
        raise ValueError(f"the sample of {name} has no timestamp; backfilling needs one")
    labels = cache.get(name + (raw_labels or ""))
    if labels is None:
        labels = cache[name + (raw_labels or "")] = _labels(name, raw_labels)
    value = _number(raw_value, "value")
    seconds = _number(raw_ts, "timestamp")
    if not math.isfinite(seconds):
        raise ValueError(f"invalid timestamp {raw_ts!r}: it must be a finite number of seconds")
    if exemplar is not None:
        _number(exemplar_value, "exemplar value")
    return Sample(line_no, labels, int(seconds * 1000), value)


def _number(text: str, what: str) -> float:
    try:
        return go_float(text)
    except ValueError:
        message = f"invalid {what} {text!r}: expected a number such as 1, 2.5e3 or NaN"
        raise ValueError(message) from None


def _labels(name: str, raw: str | None) -> Labels:
    pairs = [("__name__", name)]
    if raw:
        pairs += [(k, _ESCAPE.sub(lambda m: _UNESCAPED[m[1]], v)) for k, v in _PAIR.findall(raw)]
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        twice = sorted({k for k in names if names.count(k) > 1})
        raise ValueError(f"label {twice[0]!r} appears more than once in the sample of {name}")
    labels = Labels.of(pairs)
    problem = label_problem(labels)
    if problem is not None:
        raise ValueError(problem)
    return labels


def _why_not_a_sample(line: str) -> str:
    if line == "":
        return "blank lines are not allowed in OpenMetrics"
    if line.startswith("#"):
        return (
            "a comment must be '# HELP name text', '# TYPE name type', '# UNIT name unit' "
            "or '# EOF'"
        )
    if re.match(_NAME, line) is None:
        return f"expected a metric name at the start, got {line[:30]!r}"
    return (
        "expected 'name{label=\"value\",...} value timestamp' with single spaces, "
        f"got {line[:60]!r}"
    )


def _metadata(line: str) -> str | None:
    """None for a valid HELP/TYPE/UNIT line, else why it is not."""
    match = _META.fullmatch(line)
    if match is None:
        return _why_not_a_sample("#")
    kind, name, rest = match.groups()
    if rest is None:
        return f"# {kind} {name} needs a {'type' if kind == 'TYPE' else 'text'}"
    if kind == "TYPE" and rest not in METRIC_TYPES:
        return f"invalid metric type {rest!r} for {name}: one of {', '.join(sorted(METRIC_TYPES))}"
    return None


class _Order:
    """Per series, the previous sample: timestamps must increase."""

    def __init__(self) -> None:
        self.previous: dict[Labels, tuple[int, bytes, int]] = {}

    def check(self, sample: Sample) -> str | None:
        """None when ``sample`` may follow; "dup" for an exact repeat; else the reason."""
        bits = _bits.pack(sample.value)
        before = self.previous.get(sample.labels)
        if before is not None and sample.t <= before[0]:
            if sample.t == before[0] and bits == before[1]:
                return "dup"
            return (
                f"the sample of {sample.labels} at {sample.t / 1000:g} s is not later than the "
                f"one on line {before[2]} ({before[0] / 1000:g} s): samples of a series must be "
                "in time order, one per timestamp"
            )
        self.previous[sample.labels] = (sample.t, bits, sample.line)
        return None


def samples(lines: Iterable[bytes | str]) -> Iterator[Sample | Problem]:
    """Every sample of the text, in order, with a :class:`Problem` for each bad line (an
    exact repeat of a sample is dropped silently, as Prometheus does)."""
    cache: dict[str, Labels] = {}
    order = _Order()
    ended_at = line_no = 0
    for line_no, raw in enumerate(lines, 1):
        if ended_at:
            yield Problem(line_no, f"unexpected text after '# EOF' (line {ended_at})")
            return
        line = _text(line_no, raw)
        if line == "# EOF":
            ended_at = line_no
            continue
        item = line if isinstance(line, Problem) else _parse_line(line_no, line, cache, order)
        if item is not None:
            yield item
    if not ended_at:
        yield Problem(max(line_no, 1), "the text does not end with '# EOF'")


def _text(line_no: int, raw: bytes | str) -> str | Problem:
    try:
        line = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        return Problem(line_no, f"the line is not UTF-8 ({exc.reason} at byte {exc.start})")
    line = line[:-1] if line.endswith("\n") else line
    if line.endswith("\r"):
        return Problem(line_no, "the line ends with a carriage return; use Unix line endings")
    return line


def _parse_line(
    line_no: int, line: str, cache: dict[str, Labels], order: _Order
) -> Sample | Problem | None:
    if line.startswith("#"):
        problem = _metadata(line)
        return None if problem is None else Problem(line_no, problem)
    try:
        sample = parse_sample(line_no, line, cache)
    except ValueError as exc:
        return Problem(line_no, str(exc))
    verdict = order.check(sample)
    if verdict is None:
        return sample
    return None if verdict == "dup" else Problem(line_no, verdict)


def validate(lines: Iterable[bytes | str]) -> Summary:
    """Check a whole text; raise :class:`OpenMetricsError` listing the first problems."""
    problems: list[Problem] = []
    total = count = 0
    series: set[Labels] = set()
    min_t = max_t = None
    for item in samples(lines):
        if isinstance(item, Problem):
            total += 1
            if len(problems) < MAX_SHOWN:
                problems.append(item)
            continue
        count += 1
        series.add(item.labels)
        min_t = item.t if min_t is None else min(min_t, item.t)
        max_t = item.t if max_t is None else max(max_t, item.t)
    if total:
        raise OpenMetricsError(problems, total)
    return Summary(count, frozenset(series), min_t, max_t)
