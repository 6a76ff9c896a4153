"""Where the engine reads samples from: the ``SeriesSource`` protocol and an in-memory one."""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

from codequal.tsdb.promql.regex import AnchoredRegex
from codequal.tsdb.promql.types import Labels, Series


class MatchOp(Enum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; regexes are fully anchored, as in Prometheus.

    A missing label matches as the empty string, so ``{job=~".*"}`` also selects series
    without ``job`` and ``{job!=""}`` requires it.
    """

    op: MatchOp
    name: str
    value: str
    _regex: AnchoredRegex | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            object.__setattr__(self, "_regex", AnchoredRegex(self.value))

    def matches(self, value: str) -> bool:
        if self.op is MatchOp.EQUAL:
            return value == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return value != self.value
        assert self._regex is not None
        found = self._regex.matches(value)
        return found if self.op is MatchOp.REGEX else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op.value}"{self.value}"'


def compile_anchored(pattern: str) -> AnchoredRegex:
    """Compile a PromQL (RE2) regex, anchored at both ends as Prometheus anchors it."""
    return AnchoredRegex(pattern)


def matches_all(labels: Labels, matchers: Sequence[Matcher]) -> bool:
    return all(m.matches(labels.get(m.name)) for m in matchers)


class SeriesSource(Protocol):
    """Anything the engine can select series from (the embedded TSDB, a test fixture).

    ``select`` returns every series matching all matchers that has samples in
    ``[start, end]`` (milliseconds); it may return samples outside the window too. Samples
    are sorted by timestamp; values may include :data:`~codequal.tsdb.promql.types.STALE_NAN`.
    """

    def select(self, matchers: Sequence[Matcher], start: int, end: int) -> Iterable[Series]: ...


@runtime_checkable
class BoundedSource(SeriesSource, Protocol):
    """A source that can refuse a selection before building it.

    ``select_bounded`` is ``select`` that raises :class:`~codequal.tsdb.promql.limits.
    TooManySamples` instead of returning more than ``max_samples`` samples, having checked
    what it would return (a store: the stored chunks' sample counts) before decoding it.
    """

    def select_bounded(
        self, matchers: Sequence[Matcher], start: int, end: int, max_samples: int
    ) -> list[Series]: ...


@runtime_checkable
class BatchedSource(SeriesSource, Protocol):
    """A source that can hand a selection over a run of series at a time.

    ``select_batches`` yields the series ``select`` would return, sorted by labels, in runs
    of the source's choosing but never over ``max_samples`` samples (raising
    :class:`~codequal.tsdb.promql.limits.TooManySamples` for a single series over it): a
    range function over a long window then holds one run in memory, not the whole selection.
    """

    def select_batches(
        self, matchers: Sequence[Matcher], start: int, end: int, max_samples: int
    ) -> Iterator[list[Series]]: ...


class InMemorySource:
    """Series held in memory as ``array('q')`` timestamps and ``array('d')`` values."""

    def __init__(self, series: Iterable[Series] = ()) -> None:
        self._series: dict[Labels, Series] = {}
        for s in series:
            self.add(s.labels, s.timestamps, s.values)

    def add(
        self,
        labels: Labels | Mapping[str, str],
        timestamps: Iterable[int],
        values: Iterable[float],
    ) -> None:
        """Add samples to a series (merged with what is there, sorted, later values win)."""
        key = labels if isinstance(labels, Labels) else Labels.of(labels)
        new_ts, new_vs = array("q", timestamps), array("d", values)
        if len(new_ts) != len(new_vs):
            raise ValueError(f"{key}: {len(new_ts)} timestamps but {len(new_vs)} values")
        old = self._series.get(key)
        if old is None and all(map(operator.lt, new_ts, new_ts[1:])):
            self._series[key] = Series(key, new_ts, new_vs)  # the common case: nothing to merge
            return
        merged: dict[int, float] = {}
        if old is not None:
            merged.update(zip(old.timestamps, old.values, strict=True))
        merged.update(zip(new_ts, new_vs, strict=True))
        order = sorted(merged)
        self._series[key] = Series(key, array("q", order), array("d", (merged[t] for t in order)))

    def select(self, matchers: Sequence[Matcher], start: int, end: int) -> list[Series]:
        out = []
        for labels, s in self._series.items():
            if not matches_all(labels, matchers):
                continue
            lo = bisect_left(s.timestamps, start)
            hi = bisect_right(s.timestamps, end)
            if lo < hi:
                out.append(Series(labels, s.timestamps[lo:hi], s.values[lo:hi]))
        return out

    def truncated(self, end: int) -> InMemorySource:
        """A copy without samples after ``end`` (what ``promtool`` has loaded at ``end``)."""
        copy = InMemorySource()
        for labels, s in self._series.items():
            hi = bisect_right(s.timestamps, end)
            if hi:
                copy._series[labels] = Series(labels, s.timestamps[:hi], s.values[:hi])
        return copy

    def __iter__(self) -> Iterator[Series]:
        return iter(self._series.values())

    def __len__(self) -> int:
        return len(self._series)
