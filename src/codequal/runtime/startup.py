"""Why start-up failed, in one sentence that names the cause and what to do.

The runtime retries only what may fix itself (a database server that is not up yet) and gives
up after CODEQUAL_STARTUP_TIMEOUT; everything else ends start-up at once with a
:class:`StartupFailed` whose message is meant for the operator's terminal.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from codequal.exceptions import CodeQualError
from codequal.storage.db import Database


class StartupFailed(CodeQualError):
    """Start-up cannot go on; the message is one sentence: the cause and what to do."""


def is_transient(db: Database, exc: BaseException) -> bool:
    """True for a database that may answer if asked again: a server not (yet) reachable, or a
    SQLite file another process holds locked."""
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    if db.dialect == "sqlite":
        return "database is locked" in str(exc)
    return True


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def database_sentence(db: Database, exc: BaseException) -> str:
    """What a failed migration means for the operator."""
    text = str(exc)
    if db.dialect == "sqlite":
        path = Path(db.engine.url.database or "")
        if "file is not a database" in text:
            return (
                f"{path} is not a SQLite database (damaged, or another kind of file): move it "
                "aside to start with an empty database, or restore it from a backup"
            )
        if "unable to open database file" in text:
            return f"cannot open the database file {path}: check that {path.parent} is writable"
        if "readonly database" in text:
            return f"the database file {path} is read-only: make it writable for this user"
    return f"the database could not be migrated ({one_line(exc)}); check CODEQUAL_DATABASE_URL"


def unreachable_sentence(db: Database, timeout: float, exc: BaseException) -> str:
    where = db.engine.url.render_as_string(hide_password=True)
    return (
        f"the database at {where} was not reachable for {timeout:g} s ({one_line(exc)}): start "
        "it, fix CODEQUAL_DATABASE_URL, or wait longer with CODEQUAL_STARTUP_TIMEOUT"
    )


def part_sentence(part: str, exc: BaseException) -> str:
    """A part that raised while starting: a bug, or a dependency that refused its options."""
    return (
        f"{part} could not start ({one_line(exc)}); if a dependency refused its options, "
        "install the versions in uv.lock (`make run` does)"
    )
