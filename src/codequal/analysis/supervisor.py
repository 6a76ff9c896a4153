"""Agents in their own processes, stopped on time.

Each agent runs in a child process (:mod:`codequal.analysis.agents.worker`) in a session of
its own, so its tools are its descendants. The supervisor reads the child's frames and owns
the clock: at the agent's deadline it kills the whole process group (SIGKILL; a tool blocked
in C code cannot ignore it), within the poll interval. When one file holds the agent longer
than the per-file limit, the child is killed, the file is skipped with reason ``timeout``, and
the agent starts again without it, so the other files are still analysed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import IO, Any

from codequal.analysis.agents.base import (
    Agent,
    AgentError,
    AgentInput,
    AgentResult,
    AgentTimeout,
    Severity,
    Skip,
)
from codequal.analysis.agents.worker import HEADER

WORKER = "codequal.analysis.agents.worker"
POLL = 0.2  # seconds between clock checks: how late past its deadline a kill can come

#: (agent, file or None, index, total) as the agent starts on each file.
AgentProgress = Callable[[str, str | None, int, int], None]


@dataclass(frozen=True)
class AgentRun:
    """What one agent produced; ``error`` set when it failed or ran out of time."""

    name: str
    result: AgentResult
    error: AgentError | None
    seconds: float
    ceiling: Severity = "critical"  # what the agent could have found where it did not look


@dataclass(frozen=True)
class _Attempt:
    result: AgentResult | None = None
    error: AgentError | None = None
    hung_on: str | None = None


def run_agent(
    agent: Agent, inp: AgentInput, deadline: float, on_progress: AgentProgress | None = None
) -> AgentRun:
    """Run ``agent`` in a child process until it answers or ``deadline`` (monotonic) passes."""
    start = time.monotonic()
    hung: list[Skip] = []
    while True:
        skip = inp.skip | {s.path for s in hung}
        attempt = _attempt(agent, replace(inp, skip=skip), deadline, on_progress)
        if attempt.hung_on is None:
            break
        detail = (
            f"{agent.name} spent more than {inp.file_timeout:g} s on this file; it was stopped "
            "there and the other files were analysed"
        )
        hung.append(Skip(attempt.hung_on, "timeout", detail, agent.name, agent.ceiling))
    found = attempt.result or AgentResult()
    result = replace(found, skipped=found.skipped + tuple(hung))
    elapsed = time.monotonic() - start
    return AgentRun(agent.name, result, attempt.error, elapsed, agent.ceiling)


def _attempt(
    agent: Agent, inp: AgentInput, deadline: float, on_progress: AgentProgress | None
) -> _Attempt:
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=stderr, start_new_session=True, env=_child_env(),
        )  # fmt: skip
        try:
            _send(proc, (agent, inp))
            return _watch(proc, agent, inp, deadline, on_progress=on_progress, stderr=stderr)
        finally:
            _kill(proc)


def _watch(
    proc: subprocess.Popen[bytes],
    agent: Agent,
    inp: AgentInput,
    deadline: float,
    *,
    on_progress: AgentProgress | None,
    stderr: IO[bytes],
) -> _Attempt:
    assert proc.stdout is not None
    frames = _Frames(proc.stdout.fileno())
    current: tuple[str, float] | None = None  # the file the agent is on, since when
    while True:
        now = time.monotonic()
        file_limit = current[1] + inp.file_timeout if current else deadline
        if now >= min(deadline, file_limit):
            if current is not None and file_limit < deadline:
                return _Attempt(hung_on=current[0])
            budget = f"{inp.timeout:.3g}"
            return _Attempt(error=AgentTimeout(agent.name, f"did not finish within {budget} s"))
        frame = frames.next(min(deadline, file_limit) - now)
        if frame is None:
            continue
        if frame == ("eof",):
            return _Attempt(error=AgentError(agent.name, _crash(proc, stderr)))
        if frame[0] == "begin":
            current = (frame[1], time.monotonic()) if frame[1] else None
            if on_progress is not None:
                on_progress(agent.name, frame[1], frame[2], frame[3])
        elif frame[0] == "result":
            return _Attempt(result=frame[1])
        elif frame[0] == "error":
            kind = AgentTimeout if frame[1] == "timeout" else AgentError
            return _Attempt(error=kind(agent.name, frame[2]))


class _Frames:
    """Length-prefixed pickles from a pipe, read without blocking past a timeout."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def next(self, timeout: float) -> tuple[Any, ...] | None:
        """The next frame; None when none arrived within ``timeout`` (capped at POLL);
        ``("eof",)`` when the child closed the pipe."""
        while (frame := self._parse()) is None:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, min(timeout, POLL)))
            if not ready:
                return None
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                return ("eof",)
            self._buffer += chunk
        return frame

    def _parse(self) -> tuple[Any, ...] | None:
        if len(self._buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self._buffer)
        end = HEADER.size + size
        if len(self._buffer) < end:
            return None
        frame: tuple[Any, ...] = pickle.loads(self._buffer[HEADER.size : end])  # noqa: S301 - our own child
        self._buffer = self._buffer[end:]
        return frame


def _send(proc: subprocess.Popen[bytes], payload: object) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the child died at start; its stderr says why


def _crash(proc: subprocess.Popen[bytes], stderr: IO[bytes]) -> str:
    code = proc.wait()
    stderr.seek(0)
    tail = stderr.read()[-2000:].decode("utf-8", errors="replace").strip()
    last = tail.splitlines()[-1] if tail else "no output"
    return f"the agent's process exited with code {code} without a result: {last}"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group: the agent and every tool it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _child_env() -> dict[str, str]:
    # The child unpickles the agent: it must import what this process imports (tests' fakes
    # included), so it gets this interpreter's search path.
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
