"""Read ``timestamp,value`` CSV exports for backtests (``codequal anomaly scan``).

A row is ``timestamp,value`` or ``timestamp,value,events``: the optional third column is the
traffic behind the value (what the minimum-traffic rule needs). Timestamps are ISO 8601 with
``T`` or a space, with or without a UTC offset (naive means UTC), or Unix seconds. A header
row is optional; blank lines and ``#`` comments are skipped. Values may be ``NaN`` (gaps, as
PromQL exports 0/0). Anything else stops the read with the line number and what to fix.

A timestamp that repeats (an export in local time across a DST change writes one hour twice)
is handled by ``duplicates``: ``mean`` (the default) averages the rows of that time, value and
events alike, since each is a real measurement and neither row order nor position says which
is right; ``last`` keeps the last row in the file; ``error`` refuses the file.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NamedTuple

from codequal.analytics.anomaly.base import TimeSeries
from codequal.exceptions import InvalidInput
from codequal.vocabulary import iso_timestamp

# Unix seconds are ten digits until 2286; a thirteen-digit number is milliseconds.
_MAX_UNIX_SECONDS = 1e11

Duplicates = Literal["error", "last", "mean"]
DUPLICATES: tuple[Duplicates, ...] = ("error", "last", "mean")


class CSVError(InvalidInput):
    """A CSV file that cannot be read as a series; the message names the line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class _Row(NamedTuple):
    line: int
    t: float
    value: float
    weight: float | None
    text: str  # the timestamp as written


class Labelled(NamedTuple):
    """A series read from a file, with each timestamp as the file writes it."""

    series: TimeSeries
    texts: dict[float, str]

    def text(self, t: float) -> str:
        """The file's own spelling of timestamp ``t`` (ISO 8601 for a time not in the file)."""
        return self.texts.get(t) or iso_timestamp(t)


def read_series(path: Path, duplicates: Duplicates = "mean") -> TimeSeries:
    """The series in a CSV file (``utf-8``, an Excel BOM tolerated)."""
    return read_labelled(path, duplicates).series


def read_labelled(path: Path, duplicates: Duplicates = "mean") -> Labelled:
    """The series in a CSV file with the file's timestamp texts."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        return parse_labelled(f, duplicates)


def parse_series(lines: Iterable[str], duplicates: Duplicates = "mean") -> TimeSeries:
    """The series in CSV text, sorted by time; :class:`CSVError` on the first bad row."""
    return parse_labelled(lines, duplicates).series


def parse_labelled(lines: Iterable[str], duplicates: Duplicates = "mean") -> Labelled:
    """The series in CSV text with its timestamp texts; :class:`CSVError` on a bad row."""
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {DUPLICATES}, not {duplicates!r}")
    rows: list[_Row] = []
    width: int | None = None
    reader = csv.reader(lines)
    for fields in reader:
        line = reader.line_num
        cells = [c.strip() for c in fields]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not rows and width is None and _is_header(cells):
            width = len(cells)
            continue
        width = width or len(cells)
        rows.append(_parse_row(cells, line, width))
    if not rows:
        raise CSVError("no data rows; expected lines like 2024-05-01T10:00:00Z,0.02")
    rows = _merge_duplicates(rows, duplicates)
    return Labelled(_to_series(rows), {r.t: r.text for r in rows})


def _is_header(cells: list[str]) -> bool:
    """A first row whose timestamp and value are both not numbers or times is a header."""
    if len(cells) < 2:
        return False
    return not _parses(parse_timestamp, cells[0]) and not _parses(float, cells[1])


def _parses(fn: Callable[[str], object], text: str) -> bool:
    try:
        fn(text)
    except ValueError:
        return False
    return True


def _parse_row(cells: list[str], line: int, width: int) -> _Row:
    if len(cells) not in (2, 3):
        raise CSVError(f"expected 2 or 3 fields (timestamp,value[,events]), got {len(cells)}", line)
    if len(cells) != width:
        raise CSVError(f"expected {width} fields like the first row, got {len(cells)}", line)
    try:
        t = parse_timestamp(cells[0])
    except ValueError as exc:
        raise CSVError(str(exc), line) from None
    value = _number(cells[1], "value", line)
    weight = _number(cells[2], "events", line) if len(cells) == 3 else None
    if weight is not None and not (math.isfinite(weight) and weight >= 0):
        raise CSVError(f"events must be a count >= 0, not {cells[2]!r}", line)
    return _Row(line, t, value, weight, cells[0])


def _number(text: str, what: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise CSVError(f"{what} {text!r} is not a number", line) from None


def parse_timestamp(text: str) -> float:
    """Unix seconds from ISO 8601 (naive = UTC) or a Unix-seconds number."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or abs(seconds) >= _MAX_UNIX_SECONDS:
            raise ValueError(
                f"timestamp {text!r} is not Unix seconds (milliseconds? divide by 1000)"
            )
        return seconds
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"timestamp {text!r} is neither ISO 8601 (2024-05-01T10:00:00Z) nor Unix seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _merge_duplicates(rows: list[_Row], duplicates: Duplicates) -> list[_Row]:
    """One row per timestamp, as ``duplicates`` says; in time order."""
    groups: dict[float, list[_Row]] = {}
    for row in rows:
        group = groups.setdefault(row.t, [])
        if group and duplicates == "error":
            raise CSVError(
                f"timestamp {iso_timestamp(row.t)} repeats line {group[0].line} "
                "(pass --duplicates last or mean to accept it)",
                row.line,
            )
        group.append(row)
    merged = [g[-1] if len(g) == 1 or duplicates == "last" else _mean(g) for g in groups.values()]
    return sorted(merged, key=lambda r: r.t)


def _mean(group: list[_Row]) -> _Row:
    # NaN rows are gaps: they only count when every row of the time is one.
    finite = [r for r in group if math.isfinite(r.value)] or group
    value = sum(r.value for r in finite) / len(finite)
    weights = [r.weight for r in group if r.weight is not None]
    weight = sum(weights) / len(weights) if weights else None
    return group[0]._replace(value=value, weight=weight)


def _to_series(rows: list[_Row]) -> TimeSeries:
    weights = None if rows[0].weight is None else [r.weight or 0.0 for r in rows]
    return TimeSeries(
        tuple(r.t for r in rows),
        tuple(r.value for r in rows),
        None if weights is None else tuple(weights),
    )
