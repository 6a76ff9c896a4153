"""Record types that flow in and out of the PromQL engine.

Timestamps are integer milliseconds since the Unix epoch everywhere (sources, query times,
results), as inside Prometheus: it keeps window boundaries exact and lets results be compared
bit for bit with ``promtool``. Only :mod:`~codequal.tsdb.promql.wire` converts to seconds.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, TypeAlias

METRIC_NAME = "__name__"

# Prometheus marks a series that disappeared with this exact NaN bit pattern
# (value.StaleNaN); ordinary NaN samples are values, stale markers are not.
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
_STALE_BYTES = struct.pack("<d", STALE_NAN)


def is_stale(value: float) -> bool:
    """True for a Prometheus staleness marker (not for other NaNs)."""
    return math.isnan(value) and struct.pack("<d", value) == _STALE_BYTES


class PromQLError(Exception):
    """A query that cannot be parsed or evaluated; the message says what to change.

    ``error_type`` is the Prometheus API's ``errorType`` for it.
    """

    error_type = "execution"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Labels(tuple[tuple[str, str], ...]):
    """A frozen label set: (name, value) pairs sorted by name, without empty values.

    As in Prometheus, a label with an empty value does not exist, so it is dropped on
    construction. Being a tuple, it hashes and compares (lexicographically, like
    ``labels.Compare``) without any extra work. (No ``__slots__``: the instance dict caches
    the name-less variant, asked for at every step of a range query.)
    """

    @classmethod
    def of(cls, mapping: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> Labels:
        """Build from a mapping or pairs; later pairs win, empty values are dropped."""
        items = mapping.items() if isinstance(mapping, Mapping) else mapping
        merged = dict(items)
        return cls(sorted((k, v) for k, v in merged.items() if v != ""))

    def get(self, name: str, default: str = "") -> str:
        """The value of ``name`` or ``default`` when the label is absent."""
        for key, value in self:
            if key == name:
                return value
        return default

    @property
    def name(self) -> str:
        """The metric name (empty when dropped)."""
        return self.get(METRIC_NAME)

    def to_dict(self) -> dict[str, str]:
        return dict(self)

    def without(self, names: Iterable[str]) -> Labels:
        drop = set(names)
        return Labels(pair for pair in self if pair[0] not in drop)

    def keep(self, names: Iterable[str]) -> Labels:
        wanted = set(names)
        return Labels(pair for pair in self if pair[0] in wanted)

    def drop_name(self) -> Labels:
        """Without ``__name__``."""
        cache = self.__dict__
        dropped: Labels | None = cache.get("_nameless")
        if dropped is None:
            has_name = any(pair[0] == METRIC_NAME for pair in self)
            dropped = Labels(p for p in self if p[0] != METRIC_NAME) if has_name else self
            cache["_nameless"] = dropped
        return dropped

    def set(self, name: str, value: str) -> Labels:
        """A copy with ``name`` set to ``value`` (removed when ``value`` is empty)."""
        rest = [pair for pair in self if pair[0] != name]
        if value != "":
            rest.append((name, value))
            rest.sort()
        return Labels(rest)

    def __str__(self) -> str:
        """Prometheus's ``labels.String()`` form: ``{__name__="x", job="a"}``."""
        return "{" + ", ".join(f"{k}={quote(v)}" for k, v in self) + "}"

    def __repr__(self) -> str:
        return f"Labels({self!s})"


def quote(value: str) -> str:
    """A double-quoted string escaped like Go's strconv.Quote for the common cases."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{escaped}"'


class Sample(NamedTuple):
    """One element of an instant vector: its labels, value and evaluation time (ms)."""

    labels: Labels
    value: float
    t: int


class Series(NamedTuple):
    """A series with sorted samples in two parallel sequences (compact: arrays, not objects).

    Sources return these (values may contain :data:`STALE_NAN` markers); range results and
    range selectors are made of them too.
    """

    labels: Labels
    timestamps: Sequence[int]
    values: Sequence[float]

    def points(self) -> list[tuple[int, float]]:
        """The samples as (timestamp ms, value) pairs."""
        return list(zip(self.timestamps, self.values, strict=True))


class Scalar(NamedTuple):
    value: float
    t: int


class String(NamedTuple):
    value: str
    t: int


class Vector(tuple[Sample, ...]):
    """An instant vector (its own type so that an empty vector is not an empty matrix)."""

    __slots__ = ()


class Matrix(tuple[Series, ...]):
    """A range vector, or the result of a range query (series sorted by labels)."""

    __slots__ = ()


Value: TypeAlias = Vector | Scalar | Matrix | String
