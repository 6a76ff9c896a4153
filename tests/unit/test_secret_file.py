"""The embedded JWT secret: generated once with mode 0600, reused, refused when exposed."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from codequal.exceptions import ConfigError
from codequal.security import SECRET_FILE, load_or_create_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_call_generates_a_strong_secret_readable_by_the_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "not-yet-created"
    secret = load_or_create_secret(data_dir)
    path = data_dir / SECRET_FILE
    assert mode(path) == 0o600
    assert len(secret) >= 64
    assert path.read_text().strip() == secret
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]  # no temporary file left


def test_mode_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        load_or_create_secret(tmp_path)
    finally:
        os.umask(previous)
    assert mode(tmp_path / SECRET_FILE) == 0o600


def test_later_calls_reuse_the_same_secret(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path) == load_or_create_secret(tmp_path)


def test_different_data_dirs_get_different_secrets(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path / "a") != load_or_create_secret(tmp_path / "b")


def test_an_operator_written_secret_file_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / SECRET_FILE
    path.write_text("operator-chosen-secret-that-is-long-enough-0123456789\n")
    path.chmod(0o600)
    assert (
        load_or_create_secret(tmp_path) == "operator-chosen-secret-that-is-long-enough-0123456789"
    )


@pytest.mark.parametrize("exposed", [0o644, 0o640, 0o604, 0o620])
def test_a_file_accessible_to_group_or_others_is_refused(tmp_path: Path, exposed: int) -> None:
    path = tmp_path / SECRET_FILE
    load_or_create_secret(tmp_path)
    path.chmod(exposed)
    with pytest.raises(ConfigError, match=rf"chmod 600 {path}") as caught:
        load_or_create_secret(tmp_path)
    assert f"{exposed:04o}" in str(caught.value)


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SECRET_FILE
    path.touch(mode=0o600)
    with pytest.raises(ConfigError, match="empty"):
        load_or_create_secret(tmp_path)


def test_a_symlink_in_place_of_the_secret_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("x" * 64)
    elsewhere.chmod(0o600)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / SECRET_FILE).symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_or_create_secret(data_dir)


def test_concurrent_first_starts_agree_on_one_secret(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    results: list[str] = []

    def start() -> None:
        barrier.wait()
        results.append(load_or_create_secret(tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert set(results) == {(tmp_path / SECRET_FILE).read_text().strip()}
