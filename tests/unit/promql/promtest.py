"""A reader for Prometheus's PromQL ``.test`` format (``promql/testdata/*.test``).

Commands, one per line (``#`` lines are comments, blank lines end a block):

* ``load <interval>`` then ``<series> <values>`` lines: samples at 0, interval, 2 x interval...
* ``clear``: drop every loaded sample;
* ``eval[_fail|_ordered] instant [at <duration>] <query>`` then the expected result: one
  ``<series> <value>`` line per sample, or a single number for a scalar.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from codequal.tsdb.promql import (
    Labels,
    parse_duration_ms,
    parse_series_labels,
    parse_series_values,
)

SUITE = Path(__file__).parents[2] / "data" / "prometheus-2.42-promql"
EPSILON = 0.000001  # the suite's relative tolerance
MIN_NORMAL = 2.2250738585072014e-308

_HEX_LOOKALIKE = re.compile(r"(^|\s)[+]?0[xX](\d+)(?=\s|$)")
_LOAD = re.compile(r"load\s+(.+?)$")
_EVAL = re.compile(r"eval(?:_(fail|ordered))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")


@dataclass
class Load:
    interval_ms: int
    series: list[tuple[Labels, list[float | None]]]


@dataclass
class Clear:
    pass


@dataclass
class Eval:
    file: str
    line: int
    query: str
    t: int
    mode: str  # "", "fail" or "ordered"
    scalar: float | None = None
    expected: list[tuple[Labels, float]] = field(default_factory=list)

    @property
    def case_id(self) -> str:
        return f"{self.file}:{self.line}"


Command = Load | Clear | Eval


def split_series(line: str) -> tuple[str, str]:
    """``metric{a="b c"} 1 2`` -> (``metric{a="b c"}``, ``1 2``)."""
    if "{" in line:
        end = _closing_brace(line, line.index("{"))
        return line[: end + 1], line[end + 1 :].strip()
    name, _, values = line.partition(" ")
    if "\t" in name:
        name, _, rest = name.partition("\t")
        values = f"{rest} {values}"
    return name, values.strip()


def _closing_brace(line: str, i: int) -> int:
    quoted = False
    while i < len(line):
        ch = line[i]
        if ch == "\\" and quoted:
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == "}" and not quoted:
            return i
        i += 1
    raise ValueError(f"unclosed brace in {line!r}")


def parse_number(text: str) -> float | None:
    """Go's ParseInt(s, 0, 64) then ParseFloat: ``0x1f``, ``1e3``, ``NaN``, ``-Inf``."""
    try:
        return float(int(text, 0))
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _lines(path: Path) -> list[str]:
    out = []
    for raw in path.read_text(encoding="utf-8").split("\n"):
        line = raw.strip()
        out.append("" if line.startswith("#") else line)
    return out


def _block(lines: list[str], i: int) -> list[str]:
    block = []
    while i + 1 < len(lines) and lines[i + 1]:
        i += 1
        block.append(lines[i])
    return block


def _series_values(line: str) -> tuple[Labels, list[float | None]]:
    metric, values = split_series(line)
    labels = Labels() if metric.replace(" ", "") == "{}" else parse_series_labels(metric)
    # Prometheus's lexer has no hexadecimal in series descriptions: `0x10` is zero repeated.
    return labels, parse_series_values(_HEX_LOOKALIKE.sub(r"\g<1>0+0x\g<2>", values))


def _eval(path: Path, lines: list[str], i: int) -> Eval:
    match = _EVAL.fullmatch(lines[i])
    if match is None:
        raise ValueError(f"{path.name}:{i + 1}: invalid eval command {lines[i]!r}")
    at = parse_duration_ms(match[2]) if match[2] else 0
    case = Eval(path.name, i + 1, match[3], at, match[1] or "")
    for line in _block(lines, i):
        number = parse_number(line)
        if number is not None:
            case.scalar = number
            break
        labels, values = _series_values(line)
        (value,) = values
        assert value is not None, line
        case.expected.append((labels, value))
    return case


def read_test_file(path: Path) -> list[Command]:
    """The commands of one ``.test`` file, in order."""
    lines = _lines(path)
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        word = line.split(None, 1)[0].lower() if line else ""
        if word == "clear":
            commands.append(Clear())
        elif word == "load":
            match = _LOAD.fullmatch(line)
            assert match is not None, line
            block = _block(lines, i)
            commands.append(Load(parse_duration_ms(match[1]), [_series_values(b) for b in block]))
            i += len(block)
        elif word.startswith("eval"):
            commands.append(_eval(path, lines, i))
            i += len(_block(lines, i))
        elif word:
            raise ValueError(f"{path.name}:{i + 1}: invalid command {line!r}")
        i += 1
    return commands


def almost_equal(a: float, b: float) -> bool:
    """The suite's comparison: NaN equals NaN, else a relative error below 1e-6."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    diff = abs(a - b)
    if a == 0 or b == 0 or diff < MIN_NORMAL:
        return diff < EPSILON * MIN_NORMAL
    return diff / (abs(a) + abs(b)) < EPSILON
