"""Go's ``fmt`` formatting for the values alert templates print.

Annotations rendered here must be byte-identical to what Prometheus renders (promtool's unit
tests compare them exactly), so a float prints as Go's ``%v`` (``1.234567e+06``, not
Python's ``1234567.0``), ``printf`` follows Go's verbs and its ``%!d(float64=1.5)`` error
spellings, and infinities print as ``+Inf``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus


@dataclass(frozen=True)
class QuerySample:
    """Prometheus's template ``sample``: what ``query`` returns a list of."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class GoTime:
    """A ``time.Time`` in UTC (``toTime``), printed as Go's ``Time.String()``."""

    unix_ns: int

    def __str__(self) -> str:
        seconds, nanos = divmod(self.unix_ns, 1_000_000_000)
        stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
        fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
        return f"{stamp}{fraction} +0000 UTC"


def type_name(value: Any) -> str:  # noqa: PLR0911 - one answer per Go type
    """The Go type name fmt prints in ``%!d(float64=...)`` and ``%T``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, QuerySample):
        return "*template.sample"
    if isinstance(value, list):
        return "template.queryResult"
    if isinstance(value, GoTime):
        return "*time.Time"
    return (
        "map[string]string"
        if all(isinstance(v, str) for v in value.values())
        else ("map[string]interface {}")
    )


def _shortest(value: float) -> tuple[str, int]:
    """Shortest round-trip digits (no trailing zeros) and the decimal point position."""
    _sign, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)) or "0"
    return text, len(text) + exponent


# strconv's %g switches to an exponent from 1e6 up when the precision is "shortest".
_SHORTEST_EPREC = 6


def format_float(value: float, verb: str = "g", prec: int = -1) -> str:
    """``strconv.FormatFloat`` for verbs e, f, g (prec -1: shortest), with a sign only if
    negative and Go's spellings of infinities and NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if prec >= 0 and verb in "eEfF":
        return format(value, f".{prec}{verb}")
    if prec >= 0:
        text = format(value, f".{max(prec, 1)}{verb}")
        return text.replace("inf", "Inf")
    negative = math.copysign(1.0, value) < 0
    digits, point = _shortest(value)
    if verb in "eE" or (verb in "gG" and (point - 1 < -4 or point - 1 >= _SHORTEST_EPREC)):
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp = point - 1 if digits != "0" else 0
        body = f"{mantissa}{'e' if verb.islower() else 'E'}{'-' if exp < 0 else '+'}{abs(exp):02d}"
    elif verb in "fF":
        body = format(Decimal(repr(abs(value))), "f")
    elif point <= 0:
        body = "0." + "0" * -point + digits
    elif point >= len(digits):
        body = digits + "0" * (point - len(digits))
    else:
        body = digits[:point] + "." + digits[point:]
    return ("-" if negative else "") + body


def format_value(value: Any) -> str:  # noqa: PLR0911 - one spelling per Go type
    """``fmt.Sprint(value)`` as text/template prints an action's result."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_element(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_element(v) for v in value) + "]"
    if isinstance(value, QuerySample):
        return f"{{{format_value(value.labels)} {format_value(value.value)}}}"
    return str(value)


def _element(value: Any) -> str:
    if isinstance(value, QuerySample):
        return "0xc000000000"  # Go prints a pointer inside a container as its address
    return "<nil>" if value is None else format_value(value)


def go_quote(text: str) -> str:
    """``strconv.Quote`` for printable text (escapes, quotes, control characters)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(char)])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


_VERB = re.compile(r"%([+\-# 0]*)(\d+)?(?:\.(\d*))?(.?)", re.S)


def sprintf(fmt: str, args: list[Any]) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use (v s d f e g x q t c %)."""
    out: list[str] = []
    pos, used = 0, 0
    for match in _VERB.finditer(fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        flags, width, prec, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        spec = _Spec(flags, int(width) if width else 0, _precision(prec))
        out.append(spec.pad(_format_arg(verb, spec, args[used]), args[used]))
        used += 1
    out.append(fmt[pos:])
    if used < len(args):
        extra = ", ".join(f"{type_name(a)}={_plain(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _precision(prec: str | None) -> int | None:
    if prec is None:
        return None
    return int(prec) if prec else 0


def _plain(value: Any) -> str:
    return "<nil>" if value is None else format_value(value)


@dataclass(frozen=True)
class _Spec:
    flags: str
    width: int
    prec: int | None

    def pad(self, text: str, arg: Any) -> str:
        if len(text) >= self.width:
            return text
        if "-" in self.flags:
            return text.ljust(self.width)
        numeric = isinstance(arg, int | float) and not isinstance(arg, bool)
        if "0" in self.flags and numeric and text[-1:].isdigit():
            sign = text[0] if text[0] in "+- " else ""
            return sign + text[len(sign) :].rjust(self.width - len(sign), "0")
        return text.rjust(self.width)


def _bad(verb: str, arg: Any) -> str:
    return f"%!{verb}({type_name(arg)}={_plain(arg)})"


def _format_arg(verb: str, spec: _Spec, arg: Any) -> str:  # noqa: PLR0911 - Go's verb table
    if verb == "T":
        return type_name(arg)
    if isinstance(arg, bool):
        return format_value(arg) if verb in "tv" else _bad(verb, arg)
    if isinstance(arg, int):
        return _format_int(verb, spec, arg)
    if isinstance(arg, float):
        return _format_float_verb(verb, spec, arg)
    if isinstance(arg, str):
        if verb in "sv":
            return arg if spec.prec is None else arg[: spec.prec]
        if verb == "q":
            return go_quote(arg)
        if verb in "xX":
            hexed = arg.encode().hex()
            return hexed.upper() if verb == "X" else hexed
        return _bad(verb, arg)
    if arg is None:
        return "<nil>" if verb == "v" else f"%!{verb}(<nil>)"
    return format_value(arg) if verb in "sv" else _bad(verb, arg)


def _format_int(verb: str, spec: _Spec, arg: int) -> str:
    signs = "".join(flag for flag in "+ " if flag in spec.flags)[:1]
    if verb in "dv":
        return format(arg, f"{signs}d")
    if verb in "xXob":
        return format(arg, f"{signs}{'#' if '#' in spec.flags else ''}{verb}")
    if verb == "c":
        return chr(arg)
    if verb == "q":
        return "'" + chr(arg) + "'"
    return _bad(verb, arg)


def _format_float_verb(verb: str, spec: _Spec, arg: float) -> str:
    if verb not in "vfFeEgG":
        return _bad(verb, arg)
    go_verb = "g" if verb == "v" else verb
    default = 6 if go_verb in "fFeE" else -1
    text = format_float(arg, go_verb, default if spec.prec is None else spec.prec)
    if text[0] not in "-+" and ("+" in spec.flags or (" " in spec.flags and text != "NaN")):
        text = ("+" if "+" in spec.flags else " ") + text
    return text


def query_escape(text: str) -> str:
    """Go's ``url.QueryEscape`` (space as ``+``, everything but ``-_.~`` escaped)."""
    return quote_plus(text, safe="-_.~")
