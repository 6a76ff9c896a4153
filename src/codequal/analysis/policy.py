"""Which repositories an analysis may read, and where a clone may connect.

Over the API a caller must not make the server read its own disk or reach its internal
network: local paths are refused unless under ``CODEQUAL_REPOSITORY_ROOTS``; only https (and
ssh with ``CODEQUAL_ALLOW_SSH_REPOSITORIES``) URLs are taken; a host is resolved and refused
when any address it resolves to is loopback, private, link-local, a cloud metadata endpoint or
otherwise not public (unless ``CODEQUAL_ALLOW_PRIVATE_REPOSITORIES``). The addresses checked
are the ones the clone connects to (pinned with ``http.curloptResolve``), and git follows no
redirect, so neither a DNS answer that changes nor a redirect reaches an address not checked.
A refusal names the rule the URL broke and nothing about the server's files.

The CLI runs as its user and may read what that user can: it uses :meth:`permissive`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from codequal.analysis.credentials import Credentials
from codequal.exceptions import AnalysisError

# Cloud metadata services, some of which sit on addresses Python calls global.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
_HELPER = re.compile(r"^([A-Za-z][\w+.-]*)::")
_SCP_LIKE = re.compile(r"^(?:[\w.~-]+@)?(?P<host>[\w.-]+):(?!//)(?P<path>.+)$")
LOCAL_REFUSED = (
    "this server analyses repositories by https URL; a local path is accepted only under "
    "CODEQUAL_REPOSITORY_ROOTS"
)

Resolver = Callable[[str, int], Sequence[str]]


class RepositoryRefused(AnalysisError):
    """The repository URL breaks the server's repository policy; the message says which rule."""

    error_type = "refused"


@dataclass(frozen=True)
class Remote:
    """Where a clone goes: a local path, or a URL with the addresses it may connect to."""

    kind: Literal["local", "https", "ssh", "other"]
    source: str
    host: str | None = None
    port: int | None = None
    addresses: tuple[str, ...] = ()
    credentials: Credentials | None = field(default=None, repr=False)


def address_refusal(address: str) -> str | None:
    """Why a clone must not connect to ``address``, or None when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (
        (ip in METADATA, "a cloud metadata address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast or ip.is_unspecified, "not a public address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a public address"),
    )
    return next((why for hit, why in checks if hit), None)


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class RepositoryPolicy:
    roots: tuple[Path, ...] = ()
    allow_private: bool = False
    allow_ssh: bool = False
    allow_local: bool = False  # any local path (the CLI)
    schemes: tuple[str, ...] = ("https",)
    resolver: Resolver = resolve_host

    @classmethod
    def permissive(cls) -> RepositoryPolicy:
        """What the CLI allows: anything its user can read or reach."""
        return cls(allow_private=True, allow_ssh=True, allow_local=True,
                   schemes=("https", "http", "ssh", "git"))  # fmt: skip

    @classmethod
    def from_settings(
        cls, roots: str | None, allow_private: bool, allow_ssh: bool
    ) -> RepositoryPolicy:
        dirs = tuple(Path(p.strip()).expanduser() for p in (roots or "").split(",") if p.strip())
        return cls(tuple(Path(os.path.realpath(d)) for d in dirs), allow_private, allow_ssh)

    def check(self, url: str) -> Remote:
        """The remote ``url`` names, resolved and checked; RepositoryRefused otherwise."""
        if helper := _HELPER.match(url):  # git's <transport>::<address> remote helpers
            raise RepositoryRefused(
                f"repository URL scheme {helper[1].lower()!r} is not accepted: {self._use()}"
            )
        parsed = urlparse(url)
        scheme = parsed.scheme.lower()
        if scheme in ("https", "http", "git") or (scheme == "ssh" and parsed.netloc):
            return self._url(url, scheme, parsed.hostname, parsed.port)
        if (m := _SCP_LIKE.match(url)) and not scheme.startswith("file") and len(m["host"]) > 1:
            return self._url(url, "ssh", m["host"], None)
        if scheme and len(scheme) > 1 and scheme != "file":
            raise RepositoryRefused(
                f"repository URL scheme {scheme!r} is not accepted: {self._use()}"
            )
        path = Path(unquote(parsed.path)) if scheme == "file" else Path(url)
        return self._local(path)

    def _use(self) -> str:
        return "use an https URL" + (" or an ssh URL" if self.allow_ssh else "")

    def _url(self, url: str, scheme: str, host: str | None, port: int | None) -> Remote:
        allowed = self.schemes + (("ssh",) if self.allow_ssh else ())
        if scheme not in allowed:
            raise RepositoryRefused(
                f"repository URL scheme {scheme!r} is not accepted: {self._use()}"
            )
        if not host:
            raise RepositoryRefused("the repository URL names no host")
        port = port or {"https": 443, "http": 80, "ssh": 22, "git": 9418}[scheme]
        addresses = self._addresses(host, port)
        kind: Literal["https", "ssh", "other"] = (
            "https" if scheme == "https" else "ssh" if scheme == "ssh" else "other"
        )
        return Remote(kind, url, host, port, addresses)

    def _addresses(self, host: str, port: int) -> tuple[str, ...]:
        try:
            addresses = tuple(self.resolver(host.strip("[]"), port))
        except (OSError, UnicodeError):
            raise RepositoryRefused(f"the repository host {host} does not resolve") from None
        if not addresses:
            raise RepositoryRefused(f"the repository host {host} does not resolve")
        if not self.allow_private:
            for address in addresses:
                if (why := address_refusal(address)) is not None:
                    raise RepositoryRefused(
                        f"the repository host {host} resolves to {why}; this server clones "
                        "from public addresses only (CODEQUAL_ALLOW_PRIVATE_REPOSITORIES)"
                    )
        return addresses

    def _local(self, path: Path) -> Remote:
        if self.allow_local:
            return Remote("local", str(path))
        real = Path(os.path.realpath(path))  # symlinks resolved: a link cannot leave a root
        if path.is_absolute() and any(real == r or r in real.parents for r in self.roots):
            return Remote("local", str(real))
        raise RepositoryRefused(LOCAL_REFUSED)
