"""Health checks: each observes something real and reports ok / error / disabled."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import redis

from codequal.analysis.store import KnowledgeStore
from codequal.storage.db import Database

Status = Literal["ok", "error", "disabled"]


@dataclass(frozen=True)
class CheckResult:
    status: Status
    latency: float | None  # seconds
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "latency": self.latency, "message": self.message}


def timed(fn: Callable[[], str]) -> CheckResult:
    """Run ``fn``; its return value is the ok message, any exception an error."""
    start = time.perf_counter()
    try:
        message = fn()
    except Exception as exc:  # noqa: BLE001 - a failing dependency is what a check reports
        return CheckResult("error", time.perf_counter() - start, _one_line(exc))
    return CheckResult("ok", time.perf_counter() - start, message)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def check_database(db: Database) -> CheckResult:
    def run() -> str:
        db.ping()
        return f"{db.dialect} answered SELECT 1"

    return timed(run)


def check_vector_db(db: Database) -> CheckResult:
    """The knowledge store lives in the database: read its table, report how many profiles."""

    def run() -> str:
        return f"knowledge store readable, {KnowledgeStore(db).count()} repository profiles"

    return timed(run)


def check_deepwiki(workspace: Path) -> CheckResult:
    """DeepWiki needs a writable workspace and a working ``git``."""

    def run() -> str:
        workspace.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workspace, prefix=".probe-"):
            pass
        git = shutil.which("git")
        if git is None:
            raise RuntimeError("git is not on PATH")
        out = subprocess.run(
            [git, "--version"], capture_output=True, text=True, timeout=5, check=True
        )
        free = shutil.disk_usage(workspace).free
        return f"workspace {workspace} writable ({free // 2**20} MiB free); {out.stdout.strip()}"

    if not os.access(workspace.parent if not workspace.exists() else workspace, os.W_OK):
        return CheckResult("error", 0.0, f"workspace {workspace} is not writable")
    return timed(run)


def check_redis(client: redis.Redis | None) -> CheckResult:
    if client is None:
        return CheckResult("disabled", None, "CODEQUAL_REDIS_URL is not set")

    def run() -> str:
        client.ping()
        return "PING answered"

    return timed(run)
