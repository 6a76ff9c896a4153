"""Files an analysis leaves out: generated and vendored code.

Patterns are gitignore-style (``vendor/``, ``*_pb2.py``, ``!keep.py``), from
``CODEQUAL_EXCLUDE`` (comma-separated) and the ``exclude:`` list of a ``.codequal.yml`` at the
root of the analysed repository's head. Excluded files are listed in the report's coverage
with reason ``excluded``; they never make an analysis partial.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pathspec
import yaml

from codequal.analysis.agents.base import read_text

CONFIG_FILE = ".codequal.yml"


@dataclass(frozen=True)
class Exclusions:
    patterns: tuple[str, ...] = ()
    problem: str | None = None  # why the repository's .codequal.yml was not used

    @cached_property
    def _spec(self) -> pathspec.GitIgnoreSpec:
        return pathspec.GitIgnoreSpec.from_lines(self.patterns)

    def excludes(self, path: str) -> bool:
        return bool(self.patterns) and self._spec.match_file(path)


def split_patterns(text: str | None) -> tuple[str, ...]:
    """``CODEQUAL_EXCLUDE``: comma-separated patterns."""
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def load(head_dir: Path, configured: Iterable[str]) -> Exclusions:
    """The configured patterns plus the repository's own (a broken file is reported, not
    fatal: the analysis runs without it)."""
    patterns = tuple(configured)
    text = read_text(head_dir, CONFIG_FILE)
    if text is None:
        return Exclusions(patterns)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return Exclusions(patterns, f"{CONFIG_FILE} is not valid YAML ({exc}); it was ignored")
    own = data.get("exclude", []) if isinstance(data, dict) else None
    if isinstance(own, str):
        own = [own]
    if not isinstance(own, list) or not all(isinstance(p, str) for p in own):
        why = f"{CONFIG_FILE} must hold `exclude:` with a list of patterns; it was ignored"
        return Exclusions(patterns, why)
    return Exclusions(patterns + tuple(own))
