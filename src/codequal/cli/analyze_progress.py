"""Progress of a local ``codequal analyze`` on stderr (stdout carries the report).

On a terminal: a live line per step and per agent with its file count. Without one (CI
logs): one line per step as it starts, with the time since the start, so a long analysis
is never silent.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class StepProgress:
    def __init__(self, *, enabled: bool, terminal: bool | None = None) -> None:
        self._enabled = enabled
        self._terminal = sys.stderr.isatty() if terminal is None else terminal
        self._progress: Progress | None = None
        self._step_task: Any = None
        self._agents: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def __enter__(self) -> StepProgress:
        if self._enabled and self._terminal:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True,
            )  # fmt: skip
            self._progress.start()
            self._step_task = self._progress.add_task("starting", total=None)
        return self

    def step(self, name: str) -> None:
        if not self._enabled:
            return
        if self._progress is not None:
            self._progress.update(self._step_task, description=name)
            return
        elapsed = time.monotonic() - self._start
        print(f"codequal: [{elapsed:7.1f} s] {name}", file=sys.stderr, flush=True)

    def agent(self, name: str, path: str | None, index: int, total: int) -> None:
        """An agent started on a file (``index`` of ``total``; 0 when it does not know)."""
        if self._progress is None:
            return
        with self._lock:
            task = self._agents.get(name)
            if task is None:
                task = self._agents[name] = self._progress.add_task(name, total=total or None)
            self._progress.update(task, completed=index, total=total or None,
                                  description=f"{name} {path or ''}"[:70])  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
