"""The embedded HS256 secret: generated once into the data dir, readable by its owner only."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from codequal.exceptions import ConfigError

SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name, not a password
SECRET_BYTES = 48  # 64 base64url characters, well above HS256's 32-byte minimum
MAX_SECRET_FILE_BYTES = 4096


def load_or_create_secret(data_dir: Path) -> str:
    """The secret in ``<data_dir>/jwt-secret``, generated (mode 0600) on first use.

    Raises ConfigError when the file exists but is accessible by group or others, or is empty.
    """
    path = data_dir / SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    # When another process published first, _publish leaves its file alone and we read theirs.
    _publish(path, secrets.token_urlsafe(SECRET_BYTES))
    return _read(path)


def _publish(path: Path, secret: str) -> bool:
    """Write ``secret`` to ``path`` only if it does not exist; False when it already did.

    The content goes into a private temporary file first and is then hard-linked into place, so
    no reader ever sees an empty or half-written secret and an existing file is never replaced.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    # O_EXCL: never follow or reuse a file someone placed there; 0o600 from the first byte.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


def _read(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        # ELOOP: a symbolic link, which O_NOFOLLOW refuses so nobody can point us elsewhere.
        raise ConfigError(f"{path} cannot be read ({exc.strerror}); remove it or fix it.") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file; remove it to generate a new secret.")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{path} is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run `chmod 600 {path}`, or set CODEQUAL_JWT_SECRET."
            )
        secret = handle.read(MAX_SECRET_FILE_BYTES).decode("utf-8", errors="replace").strip()
    if not secret:
        raise ConfigError(f"{path} is empty; remove it to generate a new secret.")
    return secret
