"""Repository credentials: kept only where a worker needs them to clone, sealed at rest.

``https://alice:S3cret@git.example.com/x.git`` is how a private repository is usually given.
On submission the userinfo is taken out: the analysis records the URL as
``https://***@git.example.com/x.git`` (what reports, logs, traces and metrics show) and the
credentials, sealed with a key derived from the server's signing secret (so every replica
can open them), wait in the job row until a worker clones; the row's copy is erased when the
analysis ends. git receives them as an ``Authorization`` header in its environment, never in
the URL (which it would write into the clone's config on disk) nor on its command line.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from codequal.exceptions import AnalysisError
from codequal.redaction import HIDDEN

_KEY_INFO = b"codequal repository credentials v1"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # a stray log line must not print them
        return "Credentials(***)"


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """The URL as it is shown and stored (userinfo as ``***``), and the credentials it held."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    credentials = Credentials(unquote(user), unquote(password))
    return urlunsplit((parts.scheme, f"{HIDDEN}@{host}", *parts[2:])), credentials


def without_userinfo(url: str) -> str:
    """The URL git is given: no userinfo at all (not even the ``***`` of the stored form)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], *parts[2:]))


def git_environment(credentials: Credentials) -> dict[str, str]:
    """Environment that makes git send the credentials as HTTP Basic authentication."""
    pair = f"{credentials.username}:{credentials.password}".encode()
    header = f"Authorization: Basic {base64.b64encode(pair).decode()}"
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": header,
    }


class CredentialBox:
    """Seals and opens credentials with a key derived from the server's signing secret."""

    def __init__(self, secret: str | bytes) -> None:
        material = secret.encode() if isinstance(secret, str) else secret
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(material)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, credentials: Credentials) -> str:
        pair = f"{credentials.username}\n{credentials.password}".encode()
        return self._fernet.encrypt(pair).decode("ascii")

    def open(self, sealed: str) -> Credentials:
        try:
            pair = self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise AnalysisError(
                "the repository credentials cannot be opened: the server's signing secret "
                "changed since they were submitted; submit the analysis again"
            ) from None
        username, _, password = pair.partition("\n")
        return Credentials(username, password)
