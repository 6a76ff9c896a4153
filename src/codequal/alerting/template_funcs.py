"""The functions alert templates may call: Go's text/template builtins and Prometheus's.

Each function is ported from Prometheus 2.x (``template/template.go``) and Go's
``text/template/funcs.go`` so that results and error messages match: ``humanize`` divides by
1000 step by step and prints ``%.4g``, comparisons refuse to compare an int with a float, and
a failing conversion says ``strconv.ParseFloat: parsing "abc": invalid syntax``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codequal.alerting.gofmt import (
    GoTime,
    QuerySample,
    format_float,
    format_value,
    go_quote,
    query_escape,
    sprintf,
    type_name,
)
from codequal.exceptions import InvalidInput
from codequal.tsdb.promql import PromQLError, parse_duration_ms
from codequal.tsdb.promql.gomath import parse_float


class FuncError(InvalidInput):
    """A function failed; text/template reports it as ``error calling NAME: ...``."""


class ArgError(InvalidInput):
    """Arguments of the wrong number or type (reported without ``error calling``)."""


def truth(value: Any) -> bool:
    """text/template's truth: false, 0, nil and empty strings / maps / lists are false."""
    if value is None:
        return False
    if isinstance(value, bool | int | float | str | dict | list):
        return bool(value)
    return True


def to_float(value: Any) -> float:
    """Prometheus's ``convertToFloat``: floats, ints and numeric strings."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FuncError(f"can't convert {type_name(value)} to float")
    if isinstance(value, str):
        parsed = parse_float(value)
        if parsed is None:
            raise FuncError(f"strconv.ParseFloat: parsing {go_quote(value)}: invalid syntax")
        return parsed
    return float(value)


def _g4(value: float) -> str:
    return format_float(value, "g", 4)


def humanize(arg: Any) -> str:
    v = to_float(arg)
    if v == 0 or not math.isfinite(v):
        return _g4(v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return _g4(v) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return _g4(v) + prefix


def humanize1024(arg: Any) -> str:
    v = to_float(arg)
    if abs(v) <= 1 or not math.isfinite(v):
        return _g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return _g4(v) + prefix


def humanize_duration(arg: Any) -> str:  # noqa: PLR0911 - ported as Prometheus wrote it
    v = to_float(arg)
    if not math.isfinite(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        whole = _go_int64(v)
        seconds, minutes = _go_mod(whole, 60), _go_mod(_go_div(whole, 60), 60)
        hours, days = _go_mod(_go_div(whole, 3600), 24), _go_div(whole, 86_400)
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{_g4(v)}{prefix}s"


def _go_int64(v: float) -> int:
    """Go's ``int64(v)`` on amd64: out of range it is the minimum int64."""
    return int(v) if -(2.0**63) <= v < 2.0**63 else -(2**63)


def _go_div(a: int, b: int) -> int:
    """Go's integer division truncates toward zero (Python's floors)."""
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _go_mod(a: int, b: int) -> int:
    return a - _go_div(a, b) * b


def humanize_percentage(arg: Any) -> str:
    return _g4(to_float(arg) * 100) + "%"


_INT64_LIMIT = float(2**63)  # math.MaxInt64 as Go compares it with a float64


def _time_of(v: float) -> GoTime:
    nanos_float = v * 1e9
    if not -_INT64_LIMIT <= nanos_float <= _INT64_LIMIT:
        raise FuncError(
            f"{format_float(v)} cannot be represented as a nanoseconds timestamp since it "
            "overflows int64"
        )
    # model.TimeFromUnixNano keeps whole milliseconds, truncating as Go's integer division does.
    nanos = int(nanos_float)
    millis = abs(nanos) // 1_000_000 * (1 if nanos >= 0 else -1)
    return GoTime(millis * 1_000_000)


def humanize_timestamp(arg: Any) -> str:
    v = to_float(arg)
    if not math.isfinite(v):
        return _g4(v)
    return str(_time_of(v))


def to_time(arg: Any) -> GoTime:
    v = to_float(arg)
    if not math.isfinite(v):
        raise FuncError("value is NaN or Inf")
    return _time_of(v)


def parse_duration(text: str) -> float:
    try:
        return parse_duration_ms(text) / 1000
    except PromQLError as exc:
        raise FuncError(f'not a valid duration string: "{text}"') from exc


def title(text: str) -> str:
    """Go's ``strings.Title``: upper-cases letters that follow a separator."""
    out, prev = [], " "
    for char in text:
        out.append(char.upper() if _is_separator(prev) else char)
        prev = char
    return "".join(out)


def _is_separator(char: str) -> bool:
    if char.isascii():
        return not (char.isalnum() or char == "_")
    return char.isspace()


def re_replace_all(pattern: str, repl: str, text: str) -> str:
    # Go writes groups as $1 / ${1} / ${name}; Python as \g<1>.
    python_repl = re.sub(
        r"\$(\$)|\$\{(\w+)\}|\$(\w+)|\\",
        lambda m: "$" if m[1] else "\\\\" if m[0] == "\\" else f"\\g<{m[2] or m[3]}>",
        repl,
    )
    try:
        return re.sub(pattern, python_repl, text)
    except (re.error, IndexError) as exc:
        raise FuncError(str(exc)) from exc


def match(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error as exc:
        raise FuncError(f"error parsing regexp: {exc}") from exc


def strip_port(host_port: str) -> str:
    """``net.SplitHostPort``'s host, or the input when it has no port."""
    if host_port.startswith("["):
        end = host_port.find("]:")
        return host_port[1:end] if end > 0 else host_port
    host, colon, _ = host_port.rpartition(":")
    return host if colon and ":" not in host else host_port


def first(result: list[QuerySample]) -> QuerySample:
    if not result:
        raise FuncError("first() called on vector with no elements")
    return result[0]


def sort_by_label(label: str, result: list[QuerySample]) -> list[QuerySample]:
    return sorted(result, key=lambda s: s.labels.get(label, ""))


# -- Go builtins -----------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def go_eq(arg1: Any, *others: Any) -> bool:
    if not others:
        raise ArgError("missing argument for comparison")
    for other in others:
        if _kind(arg1) != _kind(other):
            if arg1 is not None and other is not None:
                raise FuncError("incompatible types for comparison")
        elif _kind(arg1) == "other" and not isinstance(arg1, GoTime):
            raise FuncError("non-comparable type")
        if arg1 == other:
            return True
    return False


def go_lt(arg1: Any, arg2: Any) -> bool:
    kinds = (_kind(arg1), _kind(arg2))
    if "bool" in kinds or "other" in kinds:
        raise FuncError("invalid type for comparison")
    if kinds[0] != kinds[1]:
        raise FuncError("incompatible types for comparison")
    return bool(arg1 < arg2)


def go_len(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, dict | list):
        return len(value)
    raise FuncError(f"len of type {type_name(value)}")


def go_index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key, "" if all(isinstance(v, str) for v in item.values()) else None)
        elif isinstance(item, list | str) and isinstance(key, int):
            if not 0 <= key < len(item):
                raise FuncError(f"index out of range: {key}")
            item = item[key]
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def go_print(*args: Any) -> str:
    """``fmt.Sprint``: a space between operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append("<nil>" if arg is None else format_value(arg))
    return "".join(out)


def go_and(*args: Any) -> Any:
    for arg in args[:-1]:
        if not truth(arg):
            return arg
    return args[-1]


def go_or(*args: Any) -> Any:
    for arg in args[:-1]:
        if truth(arg):
            return arg
    return args[-1]


@dataclass(frozen=True)
class Func:
    """A callable with text/template's argument checking: ``params`` are "string", "any",
    "sample" or "result"; ``variadic`` means any number of "any" after ``params``."""

    call: Callable[..., Any]
    params: tuple[str, ...] = ("any",)
    variadic: bool = False


def _ident(text: str) -> str:
    return text


_S, _A = "string", "any"
BUILTINS: dict[str, Func] = {
    "and": Func(go_and, (_A,), variadic=True),
    "or": Func(go_or, (_A,), variadic=True),
    "not": Func(lambda v: not truth(v)),
    "len": Func(go_len),
    "index": Func(go_index, (_A,), variadic=True),
    "print": Func(go_print, (), variadic=True),
    "printf": Func(lambda f, *a: sprintf(f, list(a)), (_S,), variadic=True),
    "println": Func(lambda *a: " ".join(map(format_value, a)) + "\n", (), variadic=True),
    "urlquery": Func(lambda *a: query_escape(go_print(*a)), (), variadic=True),
    "eq": Func(go_eq, (_A,), variadic=True),
    "ne": Func(lambda a, b: not go_eq(a, b), (_A, _A)),
    "lt": Func(go_lt, (_A, _A)),
    "le": Func(lambda a, b: go_lt(a, b) or go_eq(a, b), (_A, _A)),
    "gt": Func(lambda a, b: not (go_lt(a, b) or go_eq(a, b)), (_A, _A)),
    "ge": Func(lambda a, b: not go_lt(a, b), (_A, _A)),
}
PROMETHEUS: dict[str, Func] = {
    "humanize": Func(humanize),
    "humanize1024": Func(humanize1024),
    "humanizeDuration": Func(humanize_duration),
    "humanizePercentage": Func(humanize_percentage),
    "humanizeTimestamp": Func(humanize_timestamp),
    "toTime": Func(to_time),
    "parseDuration": Func(parse_duration, (_S,)),
    "title": Func(title, (_S,)),
    "toUpper": Func(str.upper, (_S,)),
    "toLower": Func(str.lower, (_S,)),
    "match": Func(match, (_S, _S)),
    "reReplaceAll": Func(re_replace_all, (_S, _S, _S)),
    "safeHtml": Func(_ident, (_S,)),
    "stripPort": Func(strip_port, (_S,)),
    "graphLink": Func(lambda e: f"/graph?g0.expr={query_escape(e)}&g0.tab=0", (_S,)),
    "tableLink": Func(lambda e: f"/graph?g0.expr={query_escape(e)}&g0.tab=1", (_S,)),
    "args": Func(lambda *a: {f"arg{i}": v for i, v in enumerate(a)}, (), variadic=True),
    "first": Func(first, ("result",)),
    "label": Func(lambda name, s: s.labels.get(name, ""), (_S, "sample")),
    "value": Func(lambda s: s.value, ("sample",)),
    "strvalue": Func(lambda s: s.labels.get("__value__", ""), ("sample",)),
    "sortByLabel": Func(sort_by_label, (_S, "result")),
}
# Functions that need the evaluation context (query, externalURL, pathPrefix) are added by
# the template executor, which has it.
CONTEXT_FUNCTIONS = ("query", "externalURL", "pathPrefix")


def check_arg(kind: str, value: Any) -> Any:
    """text/template's conversion of an argument to a parameter type."""
    expected = {"string": str, "sample": QuerySample, "result": list}.get(kind)
    if expected is None or isinstance(value, expected):
        return value
    raise ArgError(f"wrong type for value; expected {GO_TYPES[kind]}; got {type_name(value)}")


GO_TYPES = {"sample": "*template.sample", "result": "template.queryResult", "string": "string"}
