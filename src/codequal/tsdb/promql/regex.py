"""PromQL's regular expressions: RE2 syntax and semantics, anchored as Prometheus anchors them.

Prometheus compiles a matcher's (or ``label_replace``'s) pattern with Go's RE2 engine as
``^(?:pattern)$``; so do we, with the ``google-re2`` bindings, so that every pattern means
the same here as there: inline flags anywhere (``((?i)PRO).*``), ASCII ``\\d`` / ``\\w``,
no backreferences or lookarounds, and linear-time matching whatever the input.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import re2

from codequal.tsdb.promql.types import PromQLError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error is raised to the caller instead of printed


class Match(Protocol):
    """A successful match: groups by number or name (None when a group did not take part)."""

    def __getitem__(self, group: int | str) -> str | None: ...


class AnchoredRegex:
    """A PromQL regex; :meth:`match` succeeds only on the whole string."""

    __slots__ = ("_compiled", "groups", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self._compiled: Any = re2.compile(f"^(?:{pattern})$", _OPTIONS)
        except re2.error as exc:
            message = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
            raise PromQLError(
                f"invalid regular expression {pattern!r}: error parsing regexp: {message}"
            ) from None
        self.groups: int = self._compiled.groups

    def match(self, text: str) -> Match | None:
        return cast("Match | None", self._compiled.search(text))

    def matches(self, text: str) -> bool:
        return self._compiled.search(text) is not None
