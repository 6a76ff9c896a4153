"""Grouping: which captured errors are "the same issue" (a pure function of the error).

The fingerprint is the exception type, the in-app frames (module, function, source line with
whitespace collapsed; no line numbers) and the message with its variable parts replaced by
placeholders. Library frames are left out so a dependency upgrade does not split issues.
"""

from __future__ import annotations

import functools
import hashlib
import linecache
import os
import re
import sysconfig
import traceback
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from codequal.telemetry.scrub import scrub_text

# Packages that are ours even when pip installs them into site-packages.
IN_APP_PACKAGES = ("codequal",)
MAX_MESSAGE = 8_192
MAX_FRAMES = 50  # innermost; a RecursionError would otherwise carry ~1000

# URLs before UUIDs (a UUID inside a URL), everything before numbers (digits inside ids).
_PARAMETERS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Bounded scheme length: an unbounded one backtracks quadratically on long dotted text.
    (re.compile(r"\b[a-zA-Z][\w+.-]{0,30}://[^\s'\"<>]+"), "<url>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (
        re.compile(
            r"(?<![\w.<>])(?:[A-Za-z]:)?[\\/](?:[\w.-]+[\\/])*[\w.-]+"
            # relative, with an extension; starting only at a token's start keeps it linear
            r"|(?<![\w./-])[\w-]+(?:/[\w.-]+)*/[\w-]+\.[A-Za-z0-9]{1,8}\b"
        ),
        "<path>",
    ),
    (re.compile(r"(?<!\w)'[^'\n]*'(?!\w)|\"[^\"\n]*\""), "<str>"),  # not the ' in "can't"
    (
        re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9]*[a-fA-F])(?=[a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b"),
        "<hex>",  # needs a digit and a letter: plain words and plain numbers are not ids
    ),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)*"), "<num>"),  # not the 64 in "int64"
)
_DEFAULT_MARK = re.compile(r"^\{\{\s*default\s*\}\}$")


def parameterise(message: str) -> str:
    """``message`` with the parts that vary between occurrences replaced by placeholders."""
    message = message[:MAX_MESSAGE]
    for pattern, placeholder in _PARAMETERS:
        message = pattern.sub(placeholder, message)
    return message


def fingerprint(
    exc_type_name: str,
    frames: Sequence[Mapping[str, Any]],
    message: str,
    *,
    explicit: Sequence[str] | None = None,
) -> str:
    """The issue key: sha256 of type + in-app frames + parameterised message.

    Line numbers are left out so an edit elsewhere in a file does not split an issue. An
    ``explicit`` fingerprint replaces it; an item ``{{ default }}`` stands for the default.
    """
    app_frames = [f for f in frames if f.get("in_app")] or list(frames)
    parts = [exc_type_name]
    for f in app_frames:
        line = " ".join(str(f.get("context_line") or "").split())
        parts.append(f"{f.get('module')}:{f.get('function')}:{line}")
    parts.append(parameterise(message))
    default = _sha256(parts)
    if not explicit:
        return default
    return _sha256(
        ["explicit", *(default if _DEFAULT_MARK.match(p.strip()) else p for p in explicit)]
    )


def _sha256(parts: Sequence[str]) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "replace")).hexdigest()


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {os.path.realpath(paths[k]) + os.sep for k in keys if k in paths}
    return tuple(sorted(roots))


_LIBRARY_ROOTS = _library_roots()


@functools.lru_cache(maxsize=4096)
def is_in_app(filename: str, module: str) -> bool:
    """True for our code: not the standard library, not an installed third-party package."""
    if module.partition(".")[0] in IN_APP_PACKAGES:
        return True
    if not filename or filename.startswith("<"):  # <frozen ...>, <string>
        return False
    path = os.path.realpath(filename)
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not path.startswith(_LIBRARY_ROOTS)


def extract_frames(tb: TracebackType | None) -> list[dict[str, Any]]:
    """Frames of a traceback, outermost first, with their (scrubbed) source line."""
    frames: list[dict[str, Any]] = []
    for frame, lineno in traceback.walk_tb(tb):
        code = frame.f_code
        module = str(frame.f_globals.get("__name__", ""))
        line = linecache.getline(code.co_filename, lineno or 0).strip()
        frames.append(
            {
                "module": module,
                "function": code.co_qualname,
                "filename": code.co_filename,
                "lineno": lineno,
                "context_line": scrub_text(line),
                "in_app": is_in_app(code.co_filename, module),
            }
        )
    return frames[-MAX_FRAMES:]
