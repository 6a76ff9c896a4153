"""Bounded label values: repository and organisation labels capped at N distinct values.

A label whose values come from user input (a repository URL, an organisation) could grow the
series count without bound. :class:`LabelCap` lets the first ``limit`` distinct values through
and maps every later one to ``"other"``.

Admission is first-come, not "top N by traffic": a Prometheus series cannot be moved once it
exists, so a repository admitted early keeps its own series even if it goes quiet, and a busy
repository that arrives after the cap is full is counted under ``"other"``. What the cap
guarantees is the bound: at most ``limit + 1`` values per capped label, whatever the input.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

OTHER = "other"
UNKNOWN = "unknown"
DEFAULT_LIMIT = 50
# Raw inputs remembered per cap. Bounded so a flood of distinct URLs cannot grow memory;
# once full, unseen inputs take the (slower, still correct) normalise-and-admit path.
MEMO_SIZE = 4096

# scp-like git addresses: "git@github.com:owner/name.git" (but not "host:8080/path").
_SCP = re.compile(r"^(?:[^@/\s]+@)?([^:/\s]+):(?!\d+(?:/|$))(.+)$")


def _identity(value: str) -> str:
    return value


class LabelCap:
    """Map a raw value to its label: itself for the first ``limit`` distinct values, then OTHER.

    Thread-safe. A raw value seen before costs one dict lookup (``known``); only a first
    sighting normalises and takes the lock (``admit``).
    """

    def __init__(self, limit: int, normalise: Callable[[str], str] = _identity) -> None:
        self._limit = _checked_limit(limit)
        self._normalise = normalise
        self._admitted: set[str] = set()
        self._memo: dict[str, str] = {}
        self._lock = threading.Lock()
        #: The label of a raw value seen before, else None: the hot path, one C-level lookup.
        self.known: Callable[[str], str | None] = self._memo.get

    @property
    def limit(self) -> int:
        """How many distinct values get their own label."""
        return self._limit

    @property
    def admitted(self) -> frozenset[str]:
        """The values that got their own label so far."""
        with self._lock:
            return frozenset(self._admitted)

    def set_limit(self, limit: int) -> None:
        """Change the limit; values already admitted stay (their series already exist)."""
        limit = _checked_limit(limit)
        with self._lock:
            self._limit = limit
            # Remembered "other" answers may be wrong under a larger limit. Cleared in place:
            # `known` is bound to this dict.
            self._memo.clear()

    def __call__(self, raw: str) -> str:
        # Labels are never empty, so `or` only falls through for a value not seen before.
        return self.known(raw) or self.admit(raw)

    def admit(self, raw: str) -> str:
        """The label for a raw value not seen before (normalises, then admits or says OTHER)."""
        value = self._normalise(raw) or UNKNOWN
        with self._lock:
            if value in self._admitted:
                label = value
            elif len(self._admitted) < self._limit:
                self._admitted.add(value)
                label = value
            else:
                label = OTHER
            if len(self._memo) < MEMO_SIZE:
                self._memo[raw] = label
        return label


def _checked_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"label cap must be a whole number of at least 1, got {limit!r}")
    return limit


# -- repository URLs ------------------------------------------------------------------------
def _host_and_path(url: str) -> tuple[str, list[str]] | None:
    """Host (no credentials, no port) and path segments of a repository URL, lower-cased."""
    # Lower case: GitHub and GitLab resolve owner/name case-insensitively, so one repository
    # spelled two ways must not take two series.
    text = url.strip().lower()
    if not text:
        return None
    if "://" not in text:
        scp = _SCP.match(text)
        text = f"ssh://{scp[1]}/{scp[2]}" if scp else f"https://{text}"
    try:
        split = urlsplit(text)
        host = split.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket; a label must never raise
        return None
    if not host:
        return None
    segments = [s for s in split.path.split("/") if s]
    # GitLab puts "/-/" before sub-pages and allows nested groups; elsewhere owner/name.
    segments = segments[: segments.index("-")] if "-" in segments else segments[:2]
    if segments:
        segments[-1] = segments[-1].removesuffix(".git")
    return host, [s for s in segments if s]


def normalise_repository(url: str) -> str:
    """``https://user:token@GitHub.com/Owner/Name.git/pull/3`` -> ``github.com/owner/name``."""
    parts = _host_and_path(url)
    if parts is None:
        return UNKNOWN
    host, segments = parts
    return "/".join((host, *segments))


def normalise_organization(url: str) -> str:
    """``https://github.com/acme/api`` -> ``github.com/acme``; a bare name stays itself."""
    parts = _host_and_path(url)
    if parts is None:
        return UNKNOWN
    host, segments = parts
    return f"{host}/{segments[0]}" if segments else host


REPOSITORY_CAP = LabelCap(DEFAULT_LIMIT, normalise_repository)
ORGANIZATION_CAP = LabelCap(DEFAULT_LIMIT, normalise_organization)


# Bound once so the helpers below cost one frame and one dict lookup for a value seen before.
_known_repository = REPOSITORY_CAP.known
_known_organization = ORGANIZATION_CAP.known


def repository_label(url: str) -> str:
    """The capped ``repository`` label for a repository URL (host/owner/name or "other")."""
    return _known_repository(url) or REPOSITORY_CAP.admit(url)


def organization_label(url: str) -> str:
    """The capped ``organization`` label for a repository URL (host/owner or "other")."""
    return _known_organization(url) or ORGANIZATION_CAP.admit(url)


def configure_label_cap(limit: int) -> None:
    """Set the cap of every capped label (``settings.label_cap``); call once at start."""
    REPOSITORY_CAP.set_limit(limit)
    ORGANIZATION_CAP.set_limit(limit)
