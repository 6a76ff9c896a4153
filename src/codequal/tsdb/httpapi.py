"""The Prometheus HTTP API's parameter rules and answers, free of any web framework.

Times, durations, limits and error texts are Prometheus 2.x's (``web/api/v1/api.go``), so a
Grafana Prometheus data source or ``promtool query`` cannot tell the difference. The route
layer (:mod:`codequal.api.prom_api`) only moves requests in and answers out.
"""

from __future__ import annotations

import math
import re
import time
from calendar import timegm
from collections.abc import Mapping, Sequence
from typing import Any

from codequal.exceptions import InvalidInput
from codequal.tsdb.promql import Matcher, PromQLError, parse_duration_ms
from codequal.tsdb.promql.ast_adapter import VectorSelector, parse

MAX_POINTS = 11_000  # per series in a range query, as Prometheus
# Prometheus's own spellings of its smallest and largest times ("no bound").
MIN_TIME_TEXT = "-292273086-05-16T16:47:06Z"
MAX_TIME_TEXT = "292277025-08-18T07:12:54.999999999Z"
FAR_MS = 2**62
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)"
)
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
Params = Mapping[str, Sequence[str]]


class APIError(InvalidInput):
    """An answer in Prometheus's error shape: ``errorType`` and the HTTP status it implies."""

    STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "canceled": 503, "internal": 500}

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    @property
    def status(self) -> int:
        return self.STATUS[self.error_type]

    def body(self) -> dict[str, Any]:
        return {"status": "error", "errorType": self.error_type, "error": self.message}


def success(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def first(params: Params, name: str) -> str:
    """The first value of ``name`` (form body before URL, like Go's ``FormValue``), or ""."""
    values = params.get(name)
    return values[0] if values else ""


def bad_param(name: str, message: str) -> APIError:
    return APIError("bad_data", f'invalid parameter "{name}": {message}')


def _go_round(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)  # half away from zero, like math.Round


def parse_time_ms(text: str) -> int | None:
    """Unix seconds (``1.5e9``, ms precision) or RFC 3339; None for Prometheus's min/max."""
    if text in (MIN_TIME_TEXT, MAX_TIME_TEXT):
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _rfc3339_ms(text)
    if not math.isfinite(seconds) or abs(seconds) > 9e15:
        raise ValueError(f"cannot parse {text!r} to a valid timestamp")
    frac, whole = math.modf(seconds)
    nanos = int(whole) * 1_000_000_000 + int(_go_round(frac * 1000) / 1000 * 1e9)
    return nanos // 1_000_000


def _rfc3339_ms(text: str) -> int:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f'cannot parse "{text}" to a valid timestamp')
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match[7] or "", match[8]
    offset = 0 if zone == "Z" else (int(zone[1:3]) * 60 + int(zone[4:6])) * 60
    offset = -offset if zone.startswith("-") else offset
    try:
        seconds = timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        raise ValueError(f'cannot parse "{text}" to a valid timestamp') from None
    millis = int((fraction + "000")[:3]) if fraction else 0
    return (seconds - offset) * 1000 + millis


def time_param(params: Params, name: str, default: int | None) -> int | None:
    """A time parameter in ms; ``default`` when absent (None: unbounded)."""
    text = first(params, name)
    if text == "":
        return default
    try:
        return parse_time_ms(text)
    except ValueError as exc:
        raise bad_param(name, str(exc)) from None


def duration_param(params: Params, name: str) -> int | None:
    """A duration parameter in ms (``15s``, ``1m30s`` or float seconds); None when absent."""
    text = first(params, name)
    if text == "":
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            return parse_duration_ms(text)
        except PromQLError:
            raise bad_param(name, f'cannot parse "{text}" to a valid duration') from None
    if not math.isfinite(seconds) or abs(seconds * 1e9) > 2**63:
        raise bad_param(name, f'cannot parse "{text}" to a valid duration. It overflows int64')
    return int(seconds * 1e9) // 1_000_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def required_time(params: Params, name: str) -> int:
    """A time that must be given (Prometheus's min/max spellings become far bounds)."""
    if first(params, name) == "":
        raise bad_param(name, 'cannot parse "" to a valid timestamp')
    t = time_param(params, name, None)
    if t is None:
        return -FAR_MS if first(params, name) == MIN_TIME_TEXT else FAR_MS
    return t


def range_params(params: Params) -> tuple[int, int, int]:
    """``start``, ``end`` and ``step`` of a range query, checked in Prometheus's order."""
    start = required_time(params, "start")
    end = required_time(params, "end")
    if end < start:
        raise APIError("bad_data", "end timestamp must not be before start time")
    step = duration_param(params, "step")
    if step is None:
        raise bad_param("step", 'cannot parse "" to a valid duration')
    if step <= 0:
        raise APIError(
            "bad_data",
            "zero or negative query resolution step widths are not accepted. "
            "Try a positive integer",
        )
    if (end - start) // step > MAX_POINTS:
        raise APIError(
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)",
        )
    return start, end, step


def match_params(params: Params, required: bool) -> list[list[Matcher]]:
    """Each ``match[]`` selector's matchers."""
    texts = params.get("match[]", [])
    if required and not texts:
        raise APIError("bad_data", "no match[] parameter provided")
    sets = []
    for text in texts:
        try:
            node = parse(text)
        except PromQLError as exc:
            raise APIError("bad_data", exc.message) from None
        if not isinstance(node, VectorSelector) or node.offset_ms or node.at is not None:
            raise APIError("bad_data", f"invalid match[] {text!r}: expected a series selector")
        sets.append(list(node.matchers))
    return sets


def label_name(name: str) -> str:
    if LABEL_NAME.fullmatch(name) is None:
        raise APIError("bad_data", f'invalid label name: "{name}"')
    return name
