"""The repository policy as pure functions: addresses, URLs, paths and refs.

Nothing here connects anywhere: hosts resolve through a fake resolver, so private, link-local
and metadata addresses are checked without sending them a packet.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codequal.analysis.policy import (
    LOCAL_REFUSED,
    RepositoryPolicy,
    RepositoryRefused,
    address_refusal,
)
from codequal.analysis.repo import ref_problem


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("169.254.10.10", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("168.63.129.16", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("100.64.0.1", "not a public address"),
        ("0.0.0.0", "not a public address"),
        ("224.0.0.1", "not a public address"),
    ],
)
def test_internal_addresses_are_refused_with_the_reason(address: str, why: str) -> None:
    assert address_refusal(address) == why


@pytest.mark.parametrize("address", ["140.82.112.3", "2606:4700::6810:85e5", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(address) is None


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, _port: int) -> list[str]:
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]

    return resolve


DNS_TABLE = {
    "git.example": ["140.82.112.3"],
    "intranet.example": ["10.0.0.7"],
    "rebind.example": ["140.82.112.3", "127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
}
DNS = resolver(DNS_TABLE)


def test_an_https_url_resolves_and_pins_the_checked_addresses() -> None:
    remote = RepositoryPolicy(resolver=DNS).check("https://git.example/org/repo.git")
    assert (remote.kind, remote.host, remote.port, remote.addresses) == (
        "https", "git.example", 443, ("140.82.112.3",)
    )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://intranet.example/x.git", "resolves to a private address"),
        ("https://rebind.example/x.git", "resolves to a loopback address"),
        ("https://metadata.example/latest/", "resolves to a cloud metadata address"),
        ("https://127.0.0.1:8443/x.git", "resolves to a loopback address"),
        ("https://[::1]/x.git", "resolves to a loopback address"),
        ("https://nowhere.example/x.git", "does not resolve"),
        ("http://git.example/x.git", "scheme 'http' is not accepted"),
        ("git://git.example/x.git", "scheme 'git' is not accepted"),
        ("ssh://git@git.example/x.git", "scheme 'ssh' is not accepted"),
        ("git@git.example:org/x.git", "scheme 'ssh' is not accepted"),
        ("ext::sh -c touch% /tmp/pwned", "scheme 'ext' is not accepted"),
        ("https:///x.git", "names no host"),
    ],
)
def test_urls_breaking_the_policy_are_refused_with_the_rule(url: str, said: str) -> None:
    table = {**DNS_TABLE, "127.0.0.1": ["127.0.0.1"], "::1": ["::1"]}
    policy = RepositoryPolicy(resolver=resolver(table))
    with pytest.raises(RepositoryRefused, match=said):
        policy.check(url)


def test_private_addresses_and_ssh_pass_when_enabled() -> None:
    policy = RepositoryPolicy(allow_private=True, allow_ssh=True, resolver=resolver(DNS_TABLE))
    assert policy.check("https://intranet.example/x.git").addresses == ("10.0.0.7",)
    remote = policy.check("git@git.example:org/x.git")
    assert (remote.kind, remote.port) == ("ssh", 22)


def test_local_paths_are_refused_alike_whether_they_exist_or_not(tmp_path: Path) -> None:
    policy = RepositoryPolicy(resolver=DNS)
    for path in ("/etc", "/nonexistent/repo", "file:///etc/passwd", str(tmp_path), "relative"):
        with pytest.raises(RepositoryRefused) as refused:
            policy.check(path)
        assert str(refused.value) == LOCAL_REFUSED


def test_local_paths_under_a_root_pass_and_links_out_of_it_do_not(tmp_path: Path) -> None:
    root = tmp_path / "repos"
    (root / "app").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")
    policy = RepositoryPolicy.from_settings(f" {root} , /nonexistent", False, False)
    assert policy.check(str(root / "app")).source == str(root / "app")
    assert policy.check(f"file://{root}/app").kind == "local"
    for outside in (str(root / "escape"), str(root / ".." / "elsewhere"), "repos/app"):
        with pytest.raises(RepositoryRefused):
            policy.check(outside)


def test_the_cli_may_read_any_path_and_reach_any_host() -> None:
    policy = RepositoryPolicy.permissive()
    assert policy.check("/etc").kind == "local"
    assert policy.check("http://127.0.0.1:9/x.git").kind == "other"


@pytest.mark.parametrize("ref", ["main", "feature/x-1", "v1.0", "HEAD~2", "abc123^", "@"])
def test_valid_refs_pass(ref: str) -> None:
    assert ref_problem(ref) is None


@pytest.mark.parametrize(
    "ref", ["-delete", "a..b", "a b", "x:y", ".hidden", "x.lock", "a//b", "x@{1}", "tab\tref", ""]
)
def test_bad_refs_are_named(ref: str) -> None:
    assert ref_problem(ref) is not None
