"""What one query may cost: time, samples held, points per series, nesting; and its errors.

The limits are Prometheus's (``--query.timeout``, ``--query.max-samples``, the API's 11 000
points per series), checked while the query runs and *before* the memory they guard is
allocated: a subquery's step count is known from the query text, a selector's sample count
from the stored chunk headers, so neither is materialised to find out it was too big.
Messages and error types are Prometheus's (``timeout``, ``canceled``, ``execution``,
``bad_data``), so a client sees the same answer from either server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from codequal.tsdb.promql.types import PromQLError

DEFAULT_TIMEOUT_SECONDS = 120.0  # Prometheus's --query.timeout
# Prometheus allows 50 M (Go holds a sample in 16 bytes, and 20 queries at once). Here a held
# sample costs ~20 bytes (16 in an array, plus the columns built from them), so 5 M is ~100 MB
# a query; with CODEQUAL_QUERY_MAX_CONCURRENCY (2) queries at once, the decoded-chunk cache
# (~190 MB) and the answers being written, a process stays within the 1 GiB its queries may
# add. The heaviest dashboard query (24 h of the 840-series duration histogram at 60 s) holds
# ~3.5 M; range functions over long windows read the store a run of series at a time.
DEFAULT_MAX_SAMPLES = 5_000_000
MAX_POINTS = 11_000  # per series of a range query and per subquery evaluation
MAX_DEPTH = 200  # nesting (brackets plus operators): Python recursion stays far from its limit

TOO_MANY_SAMPLES = "query processing would load too many samples into memory in query execution"


class QueryTimeout(PromQLError):
    error_type = "timeout"

    def __init__(self) -> None:
        super().__init__("query timed out in expression evaluation")


class QueryCanceled(PromQLError):
    error_type = "canceled"

    def __init__(self) -> None:
        super().__init__("query was canceled in expression evaluation")


class TooManySamples(PromQLError):
    error_type = "execution"

    def __init__(self) -> None:
        super().__init__(TOO_MANY_SAMPLES)


class QueryTooLarge(PromQLError):
    """The query text asks for more than any evaluation may (the client must change it)."""

    error_type = "bad_data"


def resolution_error(points: int, where: str) -> QueryTooLarge:
    return QueryTooLarge(
        f"exceeded maximum resolution of 11,000 points per timeseries in {where} "
        f"({points:,} asked). Try a larger step or a shorter range"
    )


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """One query's allowance; ``CODEQUAL_QUERY_TIMEOUT`` and ``CODEQUAL_QUERY_MAX_SAMPLES``."""

    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_samples: int = DEFAULT_MAX_SAMPLES
    max_points: int = MAX_POINTS

    def __post_init__(self) -> None:
        if not self.timeout_seconds >= 0 or self.max_samples < 1 or self.max_points < 1:
            raise ValueError("query limits must be positive (a timeout of 0 refuses all)")


class Cancellation(Protocol):
    """Set when whoever asked for the query stopped waiting (``threading.Event`` fits)."""

    def is_set(self) -> bool: ...


class Budget:
    """One query's running account: its deadline, its cancellation, the samples it holds."""

    __slots__ = ("_cancel", "_clock", "deadline", "limits", "samples")

    def __init__(
        self,
        limits: QueryLimits,
        cancel: Cancellation | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.samples = 0
        self._cancel = cancel
        self._clock = clock
        self.deadline = clock() + limits.timeout_seconds

    def check(self) -> None:
        """Raise once the query is past its deadline or its caller has gone."""
        if self._cancel is not None and self._cancel.is_set():
            raise QueryCanceled
        if self._clock() > self.deadline:
            raise QueryTimeout

    def remaining(self) -> int:
        """How many more samples the query may load."""
        return self.limits.max_samples - self.samples

    def charge(self, samples: int) -> None:
        """Account for ``samples`` more held by the query (call before building them)."""
        self.samples += samples
        if self.samples > self.limits.max_samples:
            raise TooManySamples
        self.check()

    def release(self, samples: int) -> None:
        self.samples -= samples


def check_depth(query: str, limit: int = MAX_DEPTH) -> None:
    """Refuse a query nested deeper than ``limit`` before the parser sees it.

    The parser (Rust, recursive) overflows its stack on a few thousand nested operators,
    killing the process, and evaluation recurses per level. Counted on the text: every open
    bracket outside label matchers and strings, plus every binary operator (a chain of them is
    as deep as it is long), is an upper bound on the syntax tree's depth.
    """
    depth = deepest = operators = 0
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch in "\"'`":
            i = _skip_string(query, i)
            continue
        if ch == "{":
            i = _skip_braces(query, i)
            continue
        if ch in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]":
            depth -= 1
        elif ch in "+-*/%^<>=!" or (ch.isalpha() and _word_operator(query, i)):
            operators += 1
        i += 1
    if deepest + operators > limit:
        raise QueryTooLarge(
            f"query is nested too deeply: {deepest} levels of brackets and {operators} "
            f"operators, at most {limit} together"
        )


_WORD_OPERATORS = ("and", "or", "unless", "atan2")


def _word_operator(query: str, i: int) -> bool:
    if i > 0 and (query[i - 1].isalnum() or query[i - 1] in "_:"):
        return False
    for word in _WORD_OPERATORS:
        end = i + len(word)
        if query.startswith(word, i) and (end >= len(query) or not query[end].isalnum()):
            return True
    return False


def _skip_string(query: str, i: int) -> int:
    quote, i = query[i], i + 1
    while i < len(query) and query[i] != quote:
        i += 2 if query[i] == "\\" and quote != "`" else 1
    return i + 1


def _skip_braces(query: str, i: int) -> int:
    while i < len(query) and query[i] != "}":
        i = _skip_string(query, i) if query[i] in "\"'`" else i + 1
    return i + 1
