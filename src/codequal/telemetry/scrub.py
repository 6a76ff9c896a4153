"""Secret scrubbing: what is removed before an error, a log line or a payload is kept or sent.

Two rules: values under a sensitive key (password, token, cookie, ...) are replaced whatever they
look like, and secrets recognisable by their shape (bearer tokens, JWTs, private keys, AWS keys,
passwords in URLs) are replaced wherever they appear in text. Every pattern is compiled once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

FILTERED = "[Filtered]"
MAX_DEPTH = 16  # nesting deeper than this is cut (and a cycle cannot hang us)

# Matched as a substring of the normalised key ("X-Api-Key" -> "x_api_key"). "token" is not
# followed by "s"/"_count"/...: LLM usage counters (max_tokens, token_count) are not secrets.
_SENSITIVE_KEY = re.compile(
    r"passw(?:or)?d|secret|api_?key|authoriz|cookie|session|private_?key|credential|dsn"
    r"|token(?!s|_count|_usage|_limit)"
)
_SECRET_VALUES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)", re.S
        ),
        FILTERED,  # a truncated key (no END line) is filtered to the end of the text
    ),
    (re.compile(r"\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]*"), FILTERED),  # JWT: header.payload.signature
    # A token has a digit or a symbol; that keeps "the bearer of bad news" readable.
    (re.compile(r"\b([Bb]earer\s+)(?=[\w\-.~+/]*[\d_\-.~+/])[\w\-.~+/]{8,}=*"), rf"\1{FILTERED}"),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\r\n\"']+"), rf"\1{FILTERED}"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), FILTERED),
    (
        re.compile(r"(?i)(aws_?secret\w*[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{16,}"),
        rf"\1{FILTERED}",
    ),
    (re.compile(r"(\b[a-zA-Z][\w+.-]{0,30}://[^\s:/?#@]*:)[^\s@/?#]+@"), rf"\1{FILTERED}@"),
    # A userinfo with no password is a token or a DSN key (https://ghp_x@github.com/...).
    (re.compile(r"(\b[a-zA-Z][\w+.-]{0,30}://)[^\s:/?#@\[]{8,}@"), rf"\1{FILTERED}@"),
    (
        re.compile(
            # No leading \w* (client_secret= still matches at "secret="): it would backtrack
            # quadratically on long dotted text.
            r"(?i)((?:passw(?:or)?d|pwd|secret|token|api_?key|access_?key)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+"
        ),
        rf"\1{FILTERED}",
    ),
)


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """True when values under ``key`` must never be stored (password, token, cookie, ...)."""
    return _SENSITIVE_KEY.search(key.lower().replace("-", "_").replace(" ", "_")) is not None


# Every pattern above needs one of these words (lower-cased) to match, so ASCII text that has
# none of them is left as it is after one scan instead of eight: most text holds no secret.
# Text that is not ASCII always goes through the patterns, because a case-insensitive match can
# hinge on a letter that lower() leaves alone (the long s, U+017F, matches "s").
_NEEDLES = (
    "-----begin", "eyj", "bearer", "authorization", "akia", "asia", "secret", "://",
    "passw", "pwd", "token", "apikey", "api_key", "accesskey", "access_key",
)  # fmt: skip
_MAYBE_SECRET = re.compile("|".join(re.escape(needle) for needle in _NEEDLES))


def scrub_text(text: str) -> str:
    """Replace secrets that can be recognised by their shape inside free text."""
    if text.isascii() and _MAYBE_SECRET.search(text.lower()) is None:
        return text
    for pattern, replacement in _SECRET_VALUES:
        text = pattern.sub(replacement, text)
    return text


def scrub(obj: Any) -> Any:
    """A copy of ``obj`` with secret values replaced by ``[Filtered]`` (dicts, lists, strings)."""
    return _scrub(obj, 0)


def _scrub(obj: Any, depth: int) -> Any:
    kind = type(obj)
    # Exact type tests first: most values are str, dict, list or scalars, and an isinstance
    # test against the Mapping ABC costs more than scrubbing a short string.
    if kind is str or (kind is not dict and kind is not list and isinstance(obj, str)):
        return scrub_text(obj)
    if kind is not dict and kind is not list and not isinstance(obj, Mapping | list | tuple):
        return obj
    if depth >= MAX_DEPTH:
        return "[Truncated]"
    if kind is dict or isinstance(obj, Mapping):
        return {
            k: FILTERED
            if v is not None and isinstance(k, str) and is_sensitive_key(k)
            else _scrub(v, depth + 1)
            for k, v in obj.items()
        }
    items = [_scrub(v, depth + 1) for v in obj]
    return items if isinstance(obj, list) else tuple(items)
