"""Reading timestamp,value CSV: every timestamp form, and errors that name the line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from codequal.analytics.anomaly.csvio import (
    CSVError,
    parse_labelled,
    parse_series,
    parse_timestamp,
    read_series,
)

T = 1_714_557_600.0  # 2024-05-01T10:00:00Z


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T12:00:00+02:00",
        "2024-05-01 10:00:00",
        "2024-05-01T10:00:00",
        "2024-05-01 10:00",
        "2024-05-01T10:00:00.000Z",
        "2024-05-01 05:00:00-05:00",
        "1714557600",
        "1714557600.0",
    ],
)
def test_timestamp_forms_all_mean_the_same_instant(text: str) -> None:
    assert parse_timestamp(text) == T


def test_fractional_unix_seconds_are_kept() -> None:
    assert parse_timestamp("1714557600.25") == T + 0.25


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "neither ISO 8601"),
        ("2024-13-01T00:00:00Z", "neither ISO 8601"),
        ("1714557600000", r"\(milliseconds\? divide by 1000\)"),
        ("nan", "not Unix seconds"),
    ],
)
def test_bad_timestamps_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(text)


def test_header_is_optional() -> None:
    rows = ["2024-05-01T10:00:00Z,1.5", "2024-05-01T10:05:00Z,2"]
    with_header = parse_series(["timestamp,value", *rows])
    assert with_header == parse_series(rows)
    assert with_header.timestamps == (T, T + 300)
    assert with_header.values == (1.5, 2.0)
    assert with_header.weights is None


def test_events_column_becomes_weights_and_rows_are_sorted() -> None:
    s = parse_series(["time,ratio,events", f"{T + 300},0.5,4", f"{T},0.02,1000"])
    assert s.timestamps == (T, T + 300)
    assert s.values == (0.02, 0.5)
    assert s.weights == (1000.0, 4.0)


def test_blank_lines_comments_quotes_and_nan_are_accepted() -> None:
    s = parse_series(["# exported from Prometheus", "", f'"{T}","NaN"', f"{T + 60}, 3 "])
    assert math.isnan(s.values[0]) and s.values[1] == 3.0


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["timestamp,value", "2024-05-01T10:00:00Z,abc"], "line 2: value 'abc' is not a number"),
        (["2024-05-01T10:00:00Z,1", "tomorrow,2"], "line 2: timestamp 'tomorrow' is neither"),
        (["2024-05-01T10:00:00Z,1", "2024-05-01T10:05:00Z"], "line 2: expected 2 or 3 fields"),
        (["2024-05-01T10:00:00Z,1", "2024-05-01T10:05:00Z,1,9"], "line 2: expected 2 fields"),
        ([f"{T},0.1,-4"], "line 1: events must be a count >= 0"),
        (["timestamp,value"], "no data rows"),
        ([], "no data rows"),
    ],
)
def test_bad_rows_name_the_line_and_the_problem(lines: list[str], message: str) -> None:
    with pytest.raises(CSVError, match=message):
        parse_series(lines)


def test_line_numbers_count_blank_and_comment_lines() -> None:
    with pytest.raises(CSVError) as caught:
        parse_series(["# header comment", "", f"{T},1", f"{T + 60},oops"])
    assert caught.value.line == 4


def test_read_series_tolerates_an_excel_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("\ufefftimestamp,value\r\n2024-05-01 10:00:00,7\r\n".encode())
    assert read_series(path).values == (7.0,)


def test_a_repeated_timestamp_is_refused_with_duplicates_error() -> None:
    with pytest.raises(
        CSVError, match=r"line 3: timestamp 2024-05-01T10:00:00\.000Z repeats line 1"
    ):
        parse_series([f"{T},1", f"{T + 1},2", f"{T},3"], duplicates="error")


def test_a_repeated_timestamp_is_averaged_by_default_and_kept_last_on_request() -> None:
    # A local-time export across a DST change writes the repeated hour's rows twice.
    lines = ["timestamp,value", "2015-10-25 02:30:00,4", "2015-10-25 02:30:00,8", f"{T},1"]
    averaged = parse_labelled(lines)
    assert averaged.series.values[0] == 6.0 and len(averaged.series.values) == 2
    assert averaged.text(averaged.series.timestamps[0]) == "2015-10-25 02:30:00"
    assert parse_series(lines, duplicates="last").values[0] == 8.0
