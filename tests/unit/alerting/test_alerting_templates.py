"""Alert templates render exactly as Prometheus renders them (outputs checked against 2.42)."""

from __future__ import annotations

import math

import pytest

from codequal.alerting.gofmt import QuerySample, format_float, sprintf
from codequal.alerting.templates import TemplateData, TemplateError, check_template, render

DATA = TemplateData(
    labels={"instance": "host:9090", "job": "api", "pct": "0.4567"},
    value=1234567.891,
    external_labels={"env": "prod"},
    external_url="http://prom.example/prom",
)


EXECUTING = "<error expanding template: error executing template __alert_T: template: __alert_T:"


def r(text: str, data: TemplateData = DATA) -> str:
    return render(text, data, "T")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # The examples of Prometheus's template reference.
        ("{{ humanize 1234567 }}", "1.235M"),
        ("{{ humanize 0.000123 }}", "123u"),
        ("{{ humanize 0 }}", "0"),
        ("{{ humanize 1e30 }}", "1e+06Y"),
        ("{{ humanize -1500 }}", "-1.5k"),
        ("{{ humanize1024 1048576 }}", "1Mi"),
        ("{{ humanize1024 -5000 }}", "-4.883ki"),
        ("{{ humanize1024 0.5 }}", "0.5"),
        ("{{ humanizePercentage 0.1234 }}", "12.34%"),
        ("{{ humanizePercentage 1 }}", "100%"),
        ("{{ humanizeDuration 3661 }}", "1h 1m 1s"),
        ("{{ humanizeDuration 90061.5 }}", "1d 1h 1m 1s"),
        ("{{ humanizeDuration -3661 }}", "-1h 1m 1s"),
        ("{{ humanizeDuration 59.99999 }}", "60s"),
        ("{{ humanizeDuration 1.5 }}", "1.5s"),
        ("{{ humanizeDuration 0.0012 }}", "1.2ms"),
        ("{{ humanizeDuration 0 }}", "0s"),
        ("{{ humanizeTimestamp 1435065584.128 }}", "2015-06-23 13:19:44.128 +0000 UTC"),
        ("{{ toTime 1435065584 }}", "2015-06-23 13:19:44 +0000 UTC"),
        ('{{ parseDuration "1h2m" }}', "3720"),
        ('{{ "1234567" | humanize }}', "1.235M"),
        ("{{ $labels.pct | humanizePercentage }}", "45.67%"),
    ],
)
def test_humanize_functions_match_prometheus_outputs(template: str, expected: str) -> None:
    assert r(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ $value }}", "1.234567891e+06"),  # Go's %v: an exponent from 1e6 up
        ("{{ 1e6 }}|{{ 1e3 }}|{{ 1 }}|{{ 1.5 }}|{{ 123456.0 }}", "1e+06|1000|1|1.5|123456"),
        ('{{ printf "%.2f" $value }}', "1234567.89"),
        ('{{ $value | printf "%.1f" }}', "1234567.9"),
        ('{{ printf "%d" $value }}', "%!d(float64=1.234567891e+06)"),
        (
            '{{ printf "%f" 1 }}|{{ printf "%d" }}|{{ printf "%d" 1 2 }}',
            "%!f(int=1)|%!d(MISSING)|1%!(EXTRA int=2)",
        ),
        (
            '{{ printf "%5.1f|%-6s|%08.3f|%+d|%x|%q" 3.14159 "ab" -3.14159 5 255 "a" }}',
            '  3.1|ab    |-003.142|+5|ff|"a"',
        ),
        ('{{ printf "%g %e %G" 1e-7 12345.678 1e21 }}', "1e-07 1.234568e+04 1E+21"),
        ("{{ $labels.instance }} {{ .Labels.job }} {{ $labels.missing }}.", "host:9090 api ."),
        (
            "{{ $externalLabels.env }} {{ $externalURL }} {{ pathPrefix }}",
            "prod http://prom.example/prom /prom",
        ),
        ("{{ $labels }}", "map[instance:host:9090 job:api pct:0.4567]"),
        (
            '{{ title "hello world-foo_bar" }}|{{ toUpper "a" }}|{{ toLower "B" }}',
            "Hello World-Foo_bar|A|b",
        ),
        (
            '{{ reReplaceAll "h(.*):.*" "$1" $labels.instance }}|{{ stripPort $labels.instance }}',
            "ost|host",
        ),
        (
            '{{ match "a.c" "xabcx" }}|{{ graphLink "up > 1" }}',
            "true|/graph?g0.expr=up+%3E+1&g0.tab=0",
        ),
    ],
)
def test_values_and_printf_print_as_go_does(template: str, expected: str) -> None:
    assert r(template) == expected


def test_control_structures_and_whitespace_trimming() -> None:
    text = (
        "{{ if gt $value 1e9 }}huge{{ else if gt $value 1000.0 }}big{{ else }}small{{ end }}"
        "|{{ with $labels.missing }}has{{ else }}none{{ end }}"
        "|{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"
        '|{{- " x " -}}   |  {{- /* comment */ -}}  y'
        '|{{ $n := 5 }}{{ $n }}|{{ and 1 0 }}{{ or 0 "z" }}{{ not true }}'
    )
    assert r(text) == "big|none|instance=host:9090;job=api;pct=0.4567;| x |y|5|0zfalse"


def test_query_function_uses_the_given_query_callback() -> None:
    def query(expr: str) -> list[QuerySample]:
        assert expr == "up"
        return [QuerySample({"job": "b"}, 2.0), QuerySample({"job": "a"}, 1.0)]

    text = (
        '{{ with query "up" }}{{ . | first | value }}{{ end }}'
        '|{{ range sortByLabel "job" (query "up") }}{{ label "job" . }}{{ end }}'
    )
    assert render(text, DATA, "T", query) == "2|ab"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            '{{ humanize "abc" }}',
            f"{EXECUTING}1:115: "
            'executing "__alert_T" at <humanize "abc">: error calling humanize: '
            'strconv.ParseFloat: parsing "abc": invalid syntax>',
        ),
        (
            "{{ gt $value 1 }}",
            f"{EXECUTING}1:115: "
            'executing "__alert_T" at <gt $value 1>: error calling gt: '
            "incompatible types for comparison>",
        ),
        (
            "{{ title 5 }}",
            f'{EXECUTING}1:121: executing "__alert_T" at <5>: expected string; found 5>',
        ),
        (
            "{{ humanize 1 2 }}",
            f"{EXECUTING}1:115: "
            'executing "__alert_T" at <humanize>: wrong number of args for humanize: want 1 got 2>',
        ),
        (
            "{{ nope }}",
            "<error expanding template: error parsing template __alert_T: template: __alert_T:1: "
            'function "nope" not defined>',
        ),
    ],
)
def test_errors_render_as_prometheus_renders_them(template: str, expected: str) -> None:
    assert r(template) == expected


def test_check_template_raises_with_the_template_name() -> None:
    check_template("{{ $labels.job }}", "X")
    with pytest.raises(TemplateError, match=r'template: __alert_X:1: undefined variable "\$nope"'):
        check_template("{{ $nope }}", "X")
    with pytest.raises(TemplateError, match="unclosed action"):
        check_template("{{ $labels.job", "X")


def test_text_without_actions_is_returned_unchanged() -> None:
    assert r("plain {text}") == "plain {text}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (-0.0, "-0"),
        (5e-324, "5e-324"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
    ],
)
def test_special_floats_print_like_go(value: float, expected: str) -> None:
    assert format_float(value) == expected
    assert sprintf("%v", [value]) == expected
