"""The process one agent runs in (``python -m codequal.analysis.agents.worker``).

It reads the pickled agent and its input from stdin and writes frames to stdout: one
``("begin", path, index, total)`` per file the agent starts on, then ``("result", result)``
or ``("error", kind, message)``. A frame is a 4-byte big-endian length and a pickle. The
supervisor (:mod:`codequal.analysis.supervisor`) owns the clock and kills this process group.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
from dataclasses import replace
from typing import Any, BinaryIO

from codequal.analysis.agents.base import Agent, AgentError, AgentInput, AgentTimeout, Progress

HEADER = struct.Struct(">I")


def write_frame(out: BinaryIO, frame: tuple[Any, ...]) -> None:
    data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(data)) + data)
    out.flush()


class FrameProgress(Progress):
    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def begin(self, path: str | None, index: int, total: int) -> None:
        write_frame(self._out, ("begin", path, index, total))


def serve(source: BinaryIO, out: BinaryIO) -> None:
    agent, inp = pickle.load(source)  # noqa: S301 - written by our own supervisor
    assert isinstance(inp, AgentInput)
    runner: Agent = agent
    try:
        result = runner.review(replace(inp, progress=FrameProgress(out)))
    except AgentTimeout as exc:
        write_frame(out, ("error", "timeout", exc.message))
    except AgentError as exc:
        write_frame(out, ("error", "error", exc.message))
    else:
        write_frame(out, ("result", result))


def watch_parent(parent: int, every: float = 1.0) -> None:
    """End this process group when the supervisor is gone (killed with -9, say): nobody
    would read the result, and a hung tool would otherwise run forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="cq-parent-watch", daemon=True).start()


def main() -> None:
    watch_parent(os.getppid())
    # The frames own stdout: anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
