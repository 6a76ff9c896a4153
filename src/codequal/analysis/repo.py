"""Git plumbing for an analysis: fetch a repository, resolve refs, diff, materialise trees.

Every failure is a :class:`RepositoryError` subclass whose message tells the user what to fix
(a path that is not a repository, a ref that does not exist), so the CLI can exit 2 with it.
The ones that are the caller's mistake (``client_error``) end an analysis as ``rejected``,
not ``failed``: a bad ref or an unreachable repository is not a failure of the service.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import ssl
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from codequal.analysis.agents.base import ChangedFile, parse_name_status
from codequal.analysis.credentials import git_environment
from codequal.analysis.diffmap import FileDiff, parse_unified
from codequal.analysis.policy import Remote
from codequal.exceptions import AnalysisError

GIT_TIMEOUT = 300.0
# A clone slower than LOW_SPEED_LIMIT bytes/s for LOW_SPEED_TIME seconds is abandoned.
LOW_SPEED_LIMIT = 1000
LOW_SPEED_TIME = 10
_STATUS = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "added",
    "T": "modified",
}


class RepositoryError(AnalysisError):
    """The repository, a ref or a path cannot be used; the message says why."""

    error_type = "repository"
    client_error = True  # the caller can fix it: the analysis is rejected, not failed


class CloneError(RepositoryError):
    """The remote cannot be reached or refused the clone."""

    error_type = "unreachable"


class UnknownRefError(RepositoryError):
    error_type = "unknown_ref"


class BadRefError(RepositoryError):
    error_type = "bad_ref"


class GitTimeout(RepositoryError):
    """A local git command (not a clone) took too long: ours to fix, not the caller's."""

    error_type = "timeout"
    client_error = False


@dataclass(frozen=True)
class Diff:
    base_sha: str
    head_sha: str
    changed: tuple[ChangedFile, ...]
    lines_added: int
    lines_deleted: int
    files: dict[str, FileDiff] = field(default_factory=dict)  # hunks by head path

    @property
    def lines_changed(self) -> int:
        return self.lines_added + self.lines_deleted


def git(
    *args: str,
    cwd: Path | None = None,
    timeout: float = GIT_TIMEOUT,
    env: dict[str, str] | None = None,
) -> str:
    """Run git without a shell or a terminal prompt; return stdout."""
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "LC_ALL": "C",
        **(env or {}),
    }
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            # A diff carries file content, which need not be UTF-8 (a Latin-1 comment):
            # undecodable bytes are kept as surrogates instead of failing the analysis.
            encoding="utf-8",
            errors="surrogateescape",
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitTimeout(f"git {args[0]} took longer than {timeout:.0f} s") from None
    except FileNotFoundError:
        raise RepositoryError("git is not installed or not on PATH") from None
    if result.returncode != 0:
        raise RepositoryError(result.stderr.strip() or f"git {args[0]} failed")
    return result.stdout


def normalise_source(repository_url: str) -> str:
    """A local path or file:// URL becomes an absolute path; https / ssh URLs stay as they are.

    Raises RepositoryError for a path that does not exist or is not a git repository.
    """
    parsed = urlparse(repository_url)
    if parsed.scheme in ("http", "https", "ssh", "git"):
        return repository_url
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise RepositoryError(
            f"unsupported repository URL scheme {parsed.scheme!r}: use a local path, "
            "a file:// URL or an https URL"
        )
    else:
        path = Path(repository_url)
    try:
        path = path.expanduser().resolve()
        exists = path.exists()
    except OSError as exc:  # a name too long, a loop of links: not a path we can read
        raise RepositoryError(f"repository path cannot be read ({exc.strerror})") from None
    if not exists:
        raise RepositoryError(f"repository path {path} does not exist")
    if not os.access(path, os.R_OK):
        raise RepositoryError(f"repository path {path} is not readable")
    try:
        git("rev-parse", "--git-dir", cwd=path, timeout=30)
    except RepositoryError:
        raise RepositoryError(f"{path} is not a git repository") from None
    return str(path)


def clone(
    remote: Remote, dest: Path, timeout: float = GIT_TIMEOUT, connect_timeout: float = 10.0
) -> None:
    """Bare-clone ``remote`` into ``dest`` with every branch and tag as a local ref.

    Whatever a previous attempt left at ``dest`` is removed first (a job requeued after a
    crash starts clean). A remote must answer within ``connect_timeout`` and keep sending
    (LOW_SPEED_LIMIT bytes/s over LOW_SPEED_TIME s), so a silent one fails in seconds.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    env = {"GIT_ALLOW_PROTOCOL": {"local": "file", "https": "https", "ssh": "ssh"}.get(
        remote.kind, "https:http:ssh:git:file"
    )}  # fmt: skip
    if remote.kind == "https" and remote.host and remote.port:
        probe(remote.host, remote.port, remote.addresses, connect_timeout)
    if remote.kind == "ssh":
        env["GIT_SSH_COMMAND"] = _ssh_command(remote, connect_timeout)
    if remote.credentials is not None:
        env.update(git_environment(remote.credentials))
    try:
        git(*_clone_config(remote), "clone", "--bare", "--quiet", "--", remote.source, str(dest),
            timeout=timeout, env=env)  # fmt: skip
    except GitTimeout:
        raise CloneError(f"cloning {remote.source} took longer than {timeout:g} s") from None
    except RepositoryError as exc:
        raise CloneError(f"cannot clone {remote.source}: {exc}") from None


def _clone_config(remote: Remote) -> list[str]:
    config = [
        "http.followRedirects=false",  # a redirect could lead to an address never checked
        f"http.lowSpeedLimit={LOW_SPEED_LIMIT}",
        f"http.lowSpeedTime={LOW_SPEED_TIME}",
        "core.askPass=true",
    ]
    if remote.source.startswith(("https://", "http://")) and remote.addresses:
        shown = ",".join(f"[{a}]" if ":" in a else a for a in remote.addresses)
        config.append(f"http.curloptResolve={remote.host}:{remote.port}:{shown}")
    return [arg for item in config for arg in ("-c", item)]


def _ssh_command(remote: Remote, connect_timeout: float) -> str:
    options = [
        "BatchMode=yes", f"ConnectTimeout={max(1, int(connect_timeout))}",
        "ServerAliveInterval=5", "ServerAliveCountMax=2",
    ]  # fmt: skip
    if remote.addresses and remote.host:  # connect where the policy looked, known as the host
        options += [f"HostName={remote.addresses[0]}", f"HostKeyAlias={remote.host}"]
    return "ssh " + " ".join(f"-o {o}" for o in options)


def probe(host: str, port: int, addresses: tuple[str, ...], timeout: float) -> None:
    """Open a TLS connection to one of ``addresses`` within ``timeout`` seconds.

    git has no connect timeout for https (libcurl waits minutes for a silent TLS server), so
    a remote that does not answer is found here, in seconds.
    """
    errors = []
    for address in addresses or (host,):
        try:
            with socket.create_connection((address, port), timeout=timeout) as sock:
                context = ssl.create_default_context()
                context.check_hostname = False  # git verifies; this only checks it answers
                context.verify_mode = ssl.CERT_NONE
                with context.wrap_socket(sock, server_hostname=host):
                    return
        except (OSError, ssl.SSLError) as exc:
            errors.append(str(exc) or type(exc).__name__)
    raise CloneError(f"{host}:{port} did not answer within {timeout:g} s ({errors[-1]})")


_REVISION_SUFFIX = re.compile(r"(?:[~^]\d*)*$")
_FORBIDDEN = set(" ~^:?*[\\\x7f") | {chr(c) for c in range(32)}


def ref_problem(ref: str) -> str | None:
    """Why ``ref`` cannot name a commit (git check-ref-format's rules, plus ``~N`` / ``^N``
    suffixes), or None. Pure: the API refuses a bad ref before queueing anything."""
    name = ref[: _REVISION_SUFFIX.search(ref).start()]  # type: ignore[union-attr]
    if not name:
        return "it is empty"
    if name.startswith("-"):
        return "it starts with '-'"
    if bad := sorted(set(name) & _FORBIDDEN):
        return f"it contains {bad[0]!r}"
    if ".." in name or "@{" in name or "//" in name:
        return "it contains '..', '@{' or '//'"
    if name.endswith(("/", ".", ".lock")) or any(p.startswith(".") for p in name.split("/")):
        return "a component starts with '.' or it ends with '/', '.' or '.lock'"
    return None


def check_ref(ref: str) -> None:
    """Raise BadRefError with a sentence when ``ref`` is not a valid git ref."""
    if (problem := ref_problem(ref)) is not None:
        raise BadRefError(f"ref {ref!r} is not a valid git ref: {problem}")


def resolve(repo: Path, ref: str) -> str:
    """The commit SHA ``ref`` names in ``repo``."""
    check_ref(ref)
    try:
        return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo).strip()
    except RepositoryError:
        raise UnknownRefError(
            f"ref {ref!r} does not exist in the repository (branches, tags and commit SHAs work)"
        ) from None


def diff(repo: Path, base_sha: str, head_sha: str) -> Diff:
    """Files, hunks and line counts that changed between base and head (three-dot: since
    the fork), as GitHub shows a pull request."""
    merge_base = git("merge-base", base_sha, head_sha, cwd=repo).strip() or base_sha
    names = git("diff", "--name-status", "-z", "-M", merge_base, head_sha, cwd=repo)
    changed = parse_name_status(names)
    added = deleted = 0
    for line in git("diff", "--numstat", merge_base, head_sha, cwd=repo).splitlines():
        a, d, _ = line.split("\t", 2)
        added += int(a) if a.isdigit() else 0  # "-" for binary files
        deleted += int(d) if d.isdigit() else 0
    patch = git(
        "-c", "core.quotePath=true", "diff", "-U0", "-M", "--no-color", "--no-ext-diff",
        "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/", merge_base, head_sha, cwd=repo,
    )  # fmt: skip
    return Diff(merge_base, head_sha, changed, added, deleted, parse_unified(patch))


def materialise(repo: Path, sha: str, dest: Path) -> Path:
    """Write the tree of commit ``sha`` into ``dest`` (no .git), via ``git archive``."""
    dest.mkdir(parents=True, exist_ok=True)
    data = subprocess.run(
        ["git", "archive", "--format=tar", sha],
        cwd=repo,
        capture_output=True,
        timeout=GIT_TIMEOUT,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest, filter="data")
    return dest


def remove_tree(path: Path) -> int:
    """Delete ``path``; return the bytes freed."""
    freed = directory_size(path)
    shutil.rmtree(path)
    return freed


def directory_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total
