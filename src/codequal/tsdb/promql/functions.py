"""Functions over instant vectors and scalars (``abs``, ``histogram_quantile``, ...).

Each receives the evaluated arguments and the evaluation time; which ones drop the metric
name follows Prometheus 2.x: the maths functions drop it, ``sort*`` and ``label_*`` keep it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from codequal.tsdb.promql import gomath
from codequal.tsdb.promql.dates import DATE_FUNCTIONS
from codequal.tsdb.promql.histograms import histogram_quantile
from codequal.tsdb.promql.regex import Match
from codequal.tsdb.promql.source import compile_anchored
from codequal.tsdb.promql.types import (
    Labels,
    PromQLError,
    Sample,
    Scalar,
    String,
    Value,
    Vector,
)

InstantFunction = Callable[[Sequence[Value], int], Vector | Scalar]

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def vector_arg(args: Sequence[Value], i: int) -> Vector:
    arg = args[i]
    if not isinstance(arg, Vector):
        raise PromQLError(f"expected instant vector as argument {i + 1}, got {type(arg).__name__}")
    return arg


def scalar_arg(args: Sequence[Value], i: int) -> float:
    arg = args[i]
    if not isinstance(arg, Scalar):
        raise PromQLError(f"expected scalar as argument {i + 1}, got {type(arg).__name__}")
    return arg.value


def string_arg(args: Sequence[Value], i: int) -> str:
    arg = args[i]
    if not isinstance(arg, String):
        raise PromQLError(f"expected string as argument {i + 1}, got {type(arg).__name__}")
    return arg.value


def _math(fn: Callable[[float], float]) -> InstantFunction:
    def apply(args: Sequence[Value], t: int) -> Vector:
        return Vector(Sample(s.labels.drop_name(), fn(s.value), t) for s in vector_arg(args, 0))

    return apply


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return gomath.INF


def _sgn(x: float) -> float:
    if math.isnan(x):
        return x
    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0


def _clamp(args: Sequence[Value], t: int) -> Vector:
    low, high = scalar_arg(args, 1), scalar_arg(args, 2)
    if high < low:
        return Vector()
    return Vector(
        Sample(s.labels.drop_name(), gomath.fmax(low, gomath.fmin(high, s.value)), t)
        for s in vector_arg(args, 0)
    )


def _clamp_min(args: Sequence[Value], t: int) -> Vector:
    low = scalar_arg(args, 1)
    return Vector(
        Sample(s.labels.drop_name(), gomath.fmax(low, s.value), t) for s in vector_arg(args, 0)
    )


def _clamp_max(args: Sequence[Value], t: int) -> Vector:
    high = scalar_arg(args, 1)
    return Vector(
        Sample(s.labels.drop_name(), gomath.fmin(high, s.value), t) for s in vector_arg(args, 0)
    )


def _round(args: Sequence[Value], t: int) -> Vector:
    to_nearest = scalar_arg(args, 1) if len(args) > 1 else 1.0
    # Prometheus multiplies by the inverse: fewer floating-point surprises. Ties round up.
    inverse = gomath.div(1.0, to_nearest)
    return Vector(
        Sample(s.labels.drop_name(), gomath.div(gomath.floor(s.value * inverse + 0.5), inverse), t)
        for s in vector_arg(args, 0)
    )


def _time(args: Sequence[Value], t: int) -> Scalar:
    return Scalar(t / 1000, t)


def _vector(args: Sequence[Value], t: int) -> Vector:
    return Vector([Sample(Labels(), scalar_arg(args, 0), t)])


def _scalar(args: Sequence[Value], t: int) -> Scalar:
    vec = vector_arg(args, 0)
    return Scalar(vec[0].value if len(vec) == 1 else gomath.NAN, t)


def _sort_key(sample: Sample) -> tuple[bool, float]:
    return (math.isnan(sample.value), sample.value)


def _sort(args: Sequence[Value], t: int) -> Vector:
    # NaN goes last in both directions, as in Prometheus.
    return Vector(sorted(vector_arg(args, 0), key=_sort_key))


def _sort_desc(args: Sequence[Value], t: int) -> Vector:
    return Vector(sorted(vector_arg(args, 0), key=lambda s: (math.isnan(s.value), -s.value)))


def _histogram_quantile(args: Sequence[Value], t: int) -> Vector:
    return histogram_quantile(scalar_arg(args, 0), vector_arg(args, 1), t)


_EXPAND = re.compile(r"\$(?:(\$)|\{(\w+)\}|(\w+))")


def expand(template: str, match: Match, groups: int) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``$$``.

    As in Go, ``$1x`` names the group "1x" (which does not exist, so it expands to
    nothing), unknown groups expand to nothing and a ``$`` not followed by a name stays.
    """

    def substitute(m: re.Match[str]) -> str:
        if m[1]:
            return "$"
        name = m[2] or m[3]
        if name.isdigit() and not (name[0] == "0" and len(name) > 1):
            index = int(name)
            return (match[index] or "") if index <= groups else ""
        try:
            return match[name] or ""
        except (IndexError, KeyError):
            return ""

    return _EXPAND.sub(substitute, template)


def _label_replace(args: Sequence[Value], t: int) -> Vector:
    dst, replacement = string_arg(args, 1), string_arg(args, 2)
    src, pattern = string_arg(args, 3), string_arg(args, 4)
    regex = compile_anchored(pattern)
    if not LABEL_NAME.fullmatch(dst):
        raise PromQLError(f"invalid destination label name in label_replace(): {dst}")
    out = []
    for s in vector_arg(args, 0):
        found = regex.match(s.labels.get(src))
        labels = (
            s.labels
            if found is None
            else s.labels.set(dst, expand(replacement, found, regex.groups))
        )
        out.append(Sample(labels, s.value, t))
    return Vector(out)


def _label_join(args: Sequence[Value], t: int) -> Vector:
    dst, separator = string_arg(args, 1), string_arg(args, 2)
    sources = [string_arg(args, i) for i in range(3, len(args))]
    for name in sources:
        if not LABEL_NAME.fullmatch(name):
            raise PromQLError(f"invalid source label name in label_join(): {name}")
    if not LABEL_NAME.fullmatch(dst):
        raise PromQLError(f"invalid destination label name in label_join(): {dst}")
    return Vector(
        Sample(s.labels.set(dst, separator.join(s.labels.get(n) for n in sources)), s.value, t)
        for s in vector_arg(args, 0)
    )


# The functions applied to each sample's value alone (the metric name is dropped).
MATH_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": gomath.ceil,
    "floor": gomath.floor,
    "sqrt": gomath.sqrt,
    "exp": _exp,
    "ln": gomath.log,
    "log2": gomath.log2,
    "log10": gomath.log10,
    "sgn": _sgn,
    **gomath.TRIG,
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
}

INSTANT_FUNCTIONS: dict[str, InstantFunction] = {
    **{name: _math(fn) for name, fn in MATH_FUNCTIONS.items()},
    "round": _round,
    "clamp": _clamp,
    "clamp_min": _clamp_min,
    "clamp_max": _clamp_max,
    "time": _time,
    "vector": _vector,
    "scalar": _scalar,
    "sort": _sort,
    "sort_desc": _sort_desc,
    "histogram_quantile": _histogram_quantile,
    "label_replace": _label_replace,
    "label_join": _label_join,
    "pi": lambda args, t: Scalar(math.pi, t),
    **DATE_FUNCTIONS,
}
