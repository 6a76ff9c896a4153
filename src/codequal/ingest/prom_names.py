"""OTLP metric and attribute names as Prometheus names, the way Prometheus's OTLP receiver
writes them (prometheus/otlptranslator, "UnderscoreEscapingWithSuffixes").

The name's words, then the unit (``s`` -> ``seconds``, ``By/s`` -> ``bytes_per_second``; a unit
in braces such as ``{request}`` is an annotation and adds nothing), then ``_total`` for a
monotonic sum and ``_ratio`` for a gauge whose unit is ``1``. So ``http.server.duration`` in
``ms`` is ``http_server_duration_milliseconds``, and a counter ``requests`` is ``requests_total``.
"""

from __future__ import annotations

import re
from functools import lru_cache

_UNITS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds",
    "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
    "TiBy": "tibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams",
    "Cel": "celsius", "Hz": "hertz", "1": "", "%": "percent",
}  # fmt: skip
_PER_UNITS = {
    "s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month",
    "y": "year",
}  # fmt: skip
_NOT_WORD = re.compile(r"[^a-zA-Z0-9]+")
_NOT_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def _words(text: str) -> list[str]:
    return [w for w in _NOT_WORD.split(text) if w]


def _unit_word(unit: str, table: dict[str, str]) -> str:
    unit = unit.strip()
    if not unit or "{" in unit or "}" in unit:
        return ""
    return "_".join(_words(table.get(unit, unit)))


@lru_cache(maxsize=4096)
def metric_name(name: str, unit: str, *, counter: bool = False, gauge: bool = False) -> str:
    """The Prometheus name of an OTLP metric (before ``_bucket``/``_sum``/``_count``)."""
    words = _words(name)
    main, _, per = unit.partition("/")
    main_word = _unit_word(main, _UNITS)
    if main_word and main_word not in words:
        words.append(main_word)
    per_word = _unit_word(per, _PER_UNITS)
    if per_word and per_word not in words:
        words += ["per", per_word]
    if counter:
        words = [w for w in words if w != "total"] + ["total"]
    if gauge and unit == "1":
        words = [w for w in words if w != "ratio"] + ["ratio"]
    joined = "_".join(words)
    return f"_{joined}" if joined[:1].isdigit() else joined


@lru_cache(maxsize=8192)
def label_name(key: str) -> str:
    """An attribute key as a label name: invalid characters become ``_``; a leading digit is
    prefixed with ``key_``, and a leading ``_`` (reserved for ``__name__`` and friends) with
    ``key``."""
    label = _NOT_LABEL.sub("_", key)
    if label[:1].isdigit():
        return f"key_{label}"
    return f"key{label}" if label.startswith("_") else label
