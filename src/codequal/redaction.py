"""One way to show a URL without its secrets, for everything CodeQual shows, logs or stores.

``https://alice:S3cret@git.example.com/x.git`` is shown as ``https://***@git.example.com/x.git``;
query parameters named like secrets (``token``, ``key``, ``sig``, ...) keep their name and lose
their value; a webhook whose path is its secret (Slack, Discord, Teams, any URL passed with
``hide_path``) keeps only its host. A Sentry DSN's key is its userinfo, so it goes too.

A leaf module: it imports nothing of codequal, so configuration and every part can use it.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
# Query parameter names whose values are credentials (matched inside the name, any case).
_SECRET_PARAM = re.compile(
    r"(?i)token|secret|passw|pwd|api_?key|^key$|_key$|sig(nature)?$|auth|credential|session"
    r"|sentry_key|private"
)
# Hosts whose webhook URLs carry the secret in the path.
_SECRET_PATH_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com", "webhook.office.com")
_SCP_LIKE = re.compile(r"^[^/@\s:]+@([^/:\s@]+:[^\s]*)$")
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][\w+.-]{0,30}://[^\s\"'<>`]+")


def redact_url(url: str, *, hide_path: bool = False) -> str:
    """``url`` with its userinfo, secret query values and (for webhooks) its path hidden."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return HIDDEN
    if not parts.scheme or not parts.netloc:
        scp = _SCP_LIKE.match(url.strip())  # git@host:org/repo.git
        if scp:
            return f"{HIDDEN}@{scp.group(1)}"
        return url if "@" not in url else HIDDEN
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{HIDDEN}@{netloc.rpartition('@')[2]}"
    path = parts.path
    if hide_path or _secret_path(parts):
        path = f"/{HIDDEN}" if path not in ("", "/") else path
    return urlunsplit((parts.scheme, netloc, path, _query(parts.query), ""))


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _secret_path(parts: SplitResult) -> bool:
    host = (parts.hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in _SECRET_PATH_HOSTS)


def _query(query: str) -> str:
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, HIDDEN if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
