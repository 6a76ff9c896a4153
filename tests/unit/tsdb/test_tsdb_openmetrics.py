"""The OpenMetrics reader: what promtool accepts, and a line number for whatever it rejects."""

from __future__ import annotations

import pytest

from codequal.tsdb.openmetrics import (
    MAX_SHOWN,
    OpenMetricsError,
    Problem,
    Sample,
    samples,
    validate,
)
from codequal.tsdb.promql import Labels

GOOD = """\
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/a"} 1 1700000000
http_requests_total{code="200",path="/a"} 3 1700000015.5
http_requests_total{code="500",path="/a"} 1 1700000000 # {trace_id="abc"} 1.0 1700000000
# TYPE job:load:avg gauge
# UNIT job:load:avg ratio
job:load:avg 0.25 1700000000
job:load:avg NaN 1700000015
job:load:avg +Inf 1.7000000300001e9
# EOF
"""


def problems(text: str) -> list[str]:
    with pytest.raises(OpenMetricsError) as info:
        validate(text.splitlines(keepends=True))
    return [str(p) for p in info.value.problems]


def test_a_promtool_style_file_parses_with_labels_and_millisecond_times() -> None:
    parsed = [s for s in samples(GOOD.splitlines(keepends=True)) if isinstance(s, Sample)]
    assert [(s.line, s.t) for s in parsed] == [
        (3, 1_700_000_000_000),
        (4, 1_700_000_015_500),
        (5, 1_700_000_000_000),
        (8, 1_700_000_000_000),
        (9, 1_700_000_015_000),
        (10, 1_700_000_030_000),  # seconds are truncated to ms, as promtool does
    ]
    assert parsed[0].labels == Labels.of(
        {"__name__": "http_requests_total", "code": "200", "path": "/a"}
    )
    summary = validate(GOOD.encode().splitlines(keepends=True))
    assert (summary.samples, len(summary.series)) == (6, 3)
    assert (summary.min_t, summary.max_t) == (1_700_000_000_000, 1_700_000_030_000)


def test_label_values_unescape_only_what_prometheus_unescapes() -> None:
    text = 'x{a="q\\"uo\\\\te\\n",b="keep\\t",c=""} 1 1\n# EOF\n'
    (sample,) = [s for s in samples(text.splitlines(keepends=True)) if isinstance(s, Sample)]
    assert sample.labels.to_dict() == {"__name__": "x", "a": 'q"uo\\te\n', "b": "keep\\t"}


def test_eof_may_lack_its_newline_but_must_be_last() -> None:
    assert validate(["x 1 1\n", "# EOF"]).samples == 1
    assert problems("x 1 1\n# EOF\nx 2 2\n") == ["line 3: unexpected text after '# EOF' (line 2)"]
    assert problems("x 1 1\n") == ["line 1: the text does not end with '# EOF'"]
    assert problems("") == ["line 1: the text does not end with '# EOF'"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "blank lines are not allowed"),
        ("# just a remark", "a comment must be '# HELP name text'"),
        ("# TYPE x histo", "invalid metric type 'histo' for x"),
        ("# HELP x", "# HELP x needs a text"),
        ("x 1", "the sample of x has no timestamp"),
        ("x abc 1", "invalid value 'abc'"),
        ("x 1_0 1", "invalid value '1_0'"),
        ("x 0x10 1", "invalid value '0x10'"),
        ("x 1 Inf", "invalid timestamp 'Inf'"),
        ("x 1 soon", "invalid timestamp 'soon'"),
        ("x  1 1", "with single spaces"),
        ("x\t1 1", "with single spaces"),
        ('x{a = "1"} 1 1', "with single spaces"),
        ('x{a="1",} 1 1', "with single spaces"),
        ('x{1a="1"} 1 1', "with single spaces"),
        ('x{a="1",a="2"} 1 1', "label 'a' appears more than once"),
        ('x{__name__="y"} 1 1', "label '__name__' appears more than once"),
        ("x 1 1\r", "carriage return"),
        ("9x 1 1", "expected a metric name"),
        ('x{a="' + "v" * 2000 + '"} 1 1', "longer than 1024 bytes"),
    ],
)
def test_each_bad_line_is_reported_with_its_number(line: str, message: str) -> None:
    (problem,) = problems(f"# TYPE x gauge\n{line}\n# EOF\n")
    assert problem.startswith("line 2: ")
    assert message in problem


def test_samples_of_a_series_must_move_forward_in_time() -> None:
    text = "x 1 100\ny 1 50\nx 2 90\nx 2 100\nx 1 100\n# EOF\n"
    assert problems(text) == [
        'line 3: the sample of {__name__="x"} at 90 s is not later than the one on line 1 '
        "(100 s): samples of a series must be in time order, one per timestamp",
        'line 4: the sample of {__name__="x"} at 100 s is not later than the one on line 1 '
        "(100 s): samples of a series must be in time order, one per timestamp",
    ]  # line 5 repeats line 1 exactly: dropped, as Prometheus drops it


def test_only_the_first_problems_are_listed_but_all_are_counted() -> None:
    text = "".join(f"x{i} bad {i}\n" for i in range(50)) + "# EOF\n"
    with pytest.raises(OpenMetricsError) as info:
        validate(text.splitlines(keepends=True))
    assert info.value.total == 50
    assert len(info.value.problems) == MAX_SHOWN
    assert info.value.problems[0] == Problem(
        1, "invalid value 'bad': expected a number such as 1, 2.5e3 or NaN"
    )
    assert "(and 30 more)" in str(info.value)


def test_a_line_that_is_not_utf8_is_a_problem_not_a_crash() -> None:
    (problem,) = problems_bytes([b'x{a="\xff"} 1 1\n', b"# EOF\n"])
    assert problem.startswith("line 1: the line is not UTF-8")


def problems_bytes(lines: list[bytes]) -> list[str]:
    with pytest.raises(OpenMetricsError) as info:
        validate(lines)
    return [str(p) for p in info.value.problems]
