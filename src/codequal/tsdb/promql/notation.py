"""promtool's test notation: ``input_series`` values such as ``0+10x5 _ 100 stale -2-1x3``.

Follows Prometheus's series-description grammar exactly, because rule unit tests must mean
the same thing to ``codequal rules test`` as to ``promtool test rules``:

* ``a`` one sample; ``_`` one gap; ``stale`` a staleness marker;
* ``axN`` is ``a`` repeated N+1 times, ``_xN`` is N gaps (not N+1);
* ``a+bxN`` / ``a-bxN`` is a then N more values, each made by *adding* ``b`` to the previous
  one (repeated float addition, not ``a + i*b``: the rounding must match promtool's);
* numbers may be signed, decimal, scientific, ``Inf``, ``NaN`` or hex (``0x10``; so ``0x3``
  is the number 3, as in promtool, not "0 three times").
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Mapping

from codequal.tsdb.promql import ast_adapter
from codequal.tsdb.promql.source import InMemorySource, MatchOp
from codequal.tsdb.promql.types import METRIC_NAME, STALE_NAN, Labels, PromQLError, Series

_NUM = r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI][nN][fF]|[nN][aA][nN]"
_ITEM = re.compile(
    rf"(?P<gap>_)(?:x(?P<gaps>\d+))?"
    r"|(?P<stale>stale)"
    rf"|(?P<a>[+-]?(?:{_NUM}))(?:(?P<b>[+-](?:{_NUM}))?x(?P<n>\d+))?"
)


_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)


def parse_duration_ms(text: str) -> int:
    """A Prometheus duration (``1h30m``, ``90s``, ``1500ms``, ``0``) in milliseconds."""
    match = _DURATION.fullmatch(text)
    if text == "0":
        return 0
    if not text or match is None:
        raise PromQLError(f"invalid duration {text!r}: expected e.g. 1h30m, 90s or 1500ms")
    return sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_MS, strict=True) if n)


def _number(text: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body[:2].lower() == "0x":
        return sign * int(body, 16)
    return sign * float(body)


def _expand(match: re.Match[str]) -> list[float | None]:
    if match["gap"]:
        return [None] * (int(match["gaps"]) if match["gaps"] else 1)
    if match["stale"]:
        return [STALE_NAN]
    value = _number(match["a"])
    if match["n"] is None:
        return [value]
    count = int(match["n"])
    if match["b"] is None:
        return [value] * (count + 1)
    step = _number(match["b"])
    out: list[float | None] = [value]
    for _ in range(count):
        value += step
        out.append(value)
    return out


def parse_series_values(text: str) -> list[float | None]:
    """Expand a promtool ``values`` string; ``None`` marks a gap (no sample at that step)."""
    out: list[float | None] = []
    for item in text.split():
        match = _ITEM.fullmatch(item)
        if match is None:
            raise PromQLError(
                f"invalid series value {item!r} in {text!r}: expected a number, "
                "'_', 'stale', 'axN' or 'a+bxN'"
            )
        out.extend(_expand(match))
    return out


def parse_series_labels(text: str) -> Labels:
    """Parse a series descriptor such as ``http_requests{job="api"}`` into labels."""
    node = ast_adapter.parse(text)
    if not isinstance(node, ast_adapter.VectorSelector) or node.offset_ms or node.at:
        raise PromQLError(f'invalid series {text!r}: expected metric{{label="value", ...}}')
    pairs: dict[str, str] = {}
    for m in node.matchers:
        if m.op is not MatchOp.EQUAL:
            raise PromQLError(f"invalid series {text!r}: only '=' may appear in a series")
        pairs[m.name] = m.value
    if node.name:
        pairs[METRIC_NAME] = node.name
    return Labels.of(pairs)


def load_series(series: str, values: str, interval_ms: int, start_ms: int = 0) -> Series:
    """One promtool ``input_series`` entry: sample *i* is at ``start + i * interval``."""
    timestamps = array("q")
    samples = array("d")
    for i, value in enumerate(parse_series_values(values)):
        if value is not None:
            timestamps.append(start_ms + i * interval_ms)
            samples.append(value)
    return Series(parse_series_labels(series), timestamps, samples)


def source_from_input_series(
    input_series: Iterable[Mapping[str, str]], interval_ms: int
) -> InMemorySource:
    """An :class:`InMemorySource` from promtool's ``input_series`` list (series + values)."""
    source = InMemorySource()
    for entry in input_series:
        s = load_series(entry["series"], entry.get("values", ""), interval_ms)
        source.add(s.labels, s.timestamps, s.values)
    return source
