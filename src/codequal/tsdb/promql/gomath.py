"""Go's float64 semantics where Python's differ.

Python raises on division by zero and domain errors, and its ``max`` / ``min`` ignore NaN;
Prometheus (Go) returns IEEE-754 results instead. Results must be bit-identical to
Prometheus's, so ``math.Pow`` is ported rather than delegated to the C library.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal

INF = math.inf
NAN = math.nan


def div(x: float, y: float) -> float:
    """``x / y`` with IEEE-754 results for a zero divisor (±Inf or NaN), as Go does."""
    if y == 0.0:
        if x == 0.0 or math.isnan(x):
            return NAN
        return math.copysign(INF, x) * math.copysign(1.0, y)
    return x / y


def mod(x: float, y: float) -> float:
    """Go's ``math.Mod``: NaN for an infinite ``x`` or a zero ``y`` instead of raising."""
    if y == 0.0 or math.isinf(x) or math.isnan(x) or math.isnan(y):
        return NAN
    return math.fmod(x, y)


def floor(x: float) -> float:
    """Go's ``math.Floor``: keeps ±0, Inf and NaN (Python's returns an int or raises)."""
    if x == 0.0 or not math.isfinite(x):
        return x
    return float(math.floor(x))


def ceil(x: float) -> float:
    """Go's ``math.Ceil`` (``-Floor(-x)``, so ``ceil(-0.5)`` is -0 as in Go)."""
    return -floor(-x)


def sqrt(x: float) -> float:
    if x < 0.0:
        return NAN
    return math.sqrt(x)


def fmax(x: float, y: float) -> float:
    """Go's ``math.Max``: NaN wins, +0 beats -0."""
    if (math.isinf(x) and x > 0) or (math.isinf(y) and y > 0):
        return INF
    if math.isnan(x) or math.isnan(y):
        return NAN
    if x == 0.0 and x == y:
        return y if math.copysign(1.0, x) < 0 else x
    return x if x > y else y


def fmin(x: float, y: float) -> float:
    """Go's ``math.Min``: NaN wins, -0 beats +0."""
    if (math.isinf(x) and x < 0) or (math.isinf(y) and y < 0):
        return -INF
    if math.isnan(x) or math.isnan(y):
        return NAN
    if x == 0.0 and x == y:
        return x if math.copysign(1.0, x) < 0 else y
    return x if x < y else y


def _is_odd_int(x: float) -> bool:
    if abs(x) >= 2.0**53:
        return False
    frac, whole = math.modf(x)
    return frac == 0.0 and int(whole) & 1 == 1


def _pow_special(x: float, y: float) -> float | None:  # noqa: PLR0911 - Go's table of cases
    if y == 0.0 or x == 1.0:
        return 1.0
    if y == 1.0:
        return x
    if math.isnan(x) or math.isnan(y):
        return NAN
    if x == 0.0:
        if y < 0:
            return -INF if math.copysign(1.0, x) < 0 and _is_odd_int(y) else INF
        return x if math.copysign(1.0, x) < 0 and _is_odd_int(y) else 0.0
    if math.isinf(y):
        if x == -1.0:
            return 1.0
        return 0.0 if (abs(x) < 1) == (y > 0) else INF
    if math.isinf(x):
        if x < 0:
            return pow_(1 / x, -y)
        return 0.0 if y < 0 else INF
    if y == 0.5:
        return sqrt(x)
    if y == -0.5:
        return div(1.0, sqrt(x))
    return None


def pow_(x: float, y: float) -> float:
    """Go's ``math.Pow``, ported: square-and-multiply on the mantissa for the integer part."""
    special = _pow_special(x, y)
    if special is not None:
        return special
    yf, yi = math.modf(abs(y))
    if yf != 0 and x < 0:
        return NAN
    if yi >= 2.0**63:
        if x == -1:
            return 1.0
        return 0.0 if (abs(x) < 1) == (y > 0) else INF
    a1, ae = 1.0, 0
    if yf != 0:
        if yf > 0.5:
            yf -= 1
            yi += 1
        a1 = math.exp(yf * math.log(x))
    x1, xe = math.frexp(x)
    i = int(yi)
    while i != 0:
        if xe < -(1 << 12) or xe > (1 << 12):
            # Catastrophic overflow: let ldexp saturate, as Go does.
            ae += xe
            break
        if i & 1 == 1:
            a1 *= x1
            ae += xe
        x1 *= x1
        xe <<= 1
        if x1 < 0.5:
            x1 += x1
            xe -= 1
        i >>= 1
    if y < 0:
        a1 = 1 / a1
        ae = -ae
    return _ldexp(a1, ae)


def _ldexp(frac: float, exp: int) -> float:
    try:
        return math.ldexp(frac, exp)
    except OverflowError:
        return math.copysign(INF, frac)


def format_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" not in text:  # Python writes the same shortest digits, plus a trailing ".0"
        return text[:-2] if text.endswith(".0") else text
    return format(Decimal(text).normalize(), "f")


_GO_FLOAT = re.compile(r"[+-]?(?:inf|infinity|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)", re.I)
_GO_HEX_FLOAT = re.compile(r"[+-]?0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)p[+-]?\d+", re.I)


def parse_float(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(s, 64)`` for the forms it accepts, else None.

    Python's ``float`` also accepts surrounding blanks and digit underscores, which Go
    rejects; a bucket label like ``le=" 1"`` must be skipped as Prometheus skips it.
    """
    if _GO_FLOAT.fullmatch(text):
        return float(text)
    if _GO_HEX_FLOAT.fullmatch(text):
        return float.fromhex(text)
    return None


# Go's math.Log: the reduction x = 2^k * (1 + f), 1+f in [sqrt(2)/2, sqrt(2)), and a minimax
# polynomial in s = f / (2 + f) (FreeBSD's e_log.c, the algorithm Go uses). The C library's
# log can round the last bit differently, and ln / log2 / log10 results must match Go's.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_L = (
    6.666666666666735130e-01,
    3.999999999940941908e-01,
    2.857142874366239149e-01,
    2.222219843214978396e-01,
    1.818357216161805012e-01,
    1.531383769920937332e-01,
    1.479819860511658591e-01,
)
_SQRT2_HALF = 0.7071067811865476
_LOG10_E = 0.4342944819032518  # Go's constant 1/Ln10, rounded once
_LOG2_E = 1.4426950408889634  # 1/Ln2


def log(x: float) -> float:
    """Go's ``math.Log``."""
    if math.isnan(x) or x == INF:
        return x
    if x < 0:
        return NAN
    if x == 0:
        return -INF
    f1, ki = math.frexp(x)
    if f1 < _SQRT2_HALF:
        f1 *= 2
        ki -= 1
    f = f1 - 1
    k = float(ki)
    s = f / (2 + f)
    s2 = s * s
    s4 = s2 * s2
    l1, l2, l3, l4, l5, l6, l7 = _L
    t1 = s2 * (l1 + s4 * (l3 + s4 * (l5 + s4 * l7)))
    t2 = s4 * (l2 + s4 * (l4 + s4 * l6))
    r = t1 + t2
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


def log10(x: float) -> float:
    """Go's ``math.Log10``: ``Log(x) * (1/Ln10)``."""
    return log(x) * _LOG10_E


def log2(x: float) -> float:
    """Go's ``math.Log2``: exact for powers of two."""
    frac, exp = math.frexp(x) if math.isfinite(x) and x > 0 else (0.0, 0)
    if frac == 0.5:
        return float(exp - 1)
    if frac == 0.0:
        return log(x) * _LOG2_E
    return log(frac) * _LOG2_E + float(exp)


def _domain(
    fn: Callable[[float], float], overflow: Callable[[float], float]
) -> Callable[[float], float]:
    """``fn`` with Go's answers where Python raises: NaN outside the domain, ±Inf on
    overflow (``overflow(x)`` says which)."""

    def go(x: float) -> float:
        try:
            return fn(x)
        except ValueError:
            return NAN
        except OverflowError:
            return overflow(x)

    return go


def _atanh(x: float) -> float:
    if abs(x) == 1.0:
        return math.copysign(INF, x)
    return _domain(math.atanh, lambda v: NAN)(x)


def _signed_inf(x: float) -> float:
    return math.copysign(INF, x)


TRIG: dict[str, Callable[[float], float]] = {
    "sin": _domain(math.sin, lambda x: NAN),
    "cos": _domain(math.cos, lambda x: NAN),
    "tan": _domain(math.tan, lambda x: NAN),
    "asin": _domain(math.asin, lambda x: NAN),
    "acos": _domain(math.acos, lambda x: NAN),
    "atan": math.atan,
    "sinh": _domain(math.sinh, _signed_inf),
    "cosh": _domain(math.cosh, lambda x: INF),
    "tanh": math.tanh,
    "asinh": math.asinh,
    "acosh": _domain(math.acosh, lambda x: NAN),
    "atanh": _atanh,
}
"""The trigonometric and hyperbolic functions (the C library's, within a bit of Go's)."""
