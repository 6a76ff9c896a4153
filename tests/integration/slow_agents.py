"""Agents for the deadline tests (in a module the agent's worker process imports quickly),
and how to tell a process is gone."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from codequal.analysis.agents.base import AgentInput, AgentResult, LocalAgent, Severity


@dataclass(frozen=True)
class Sleeper(LocalAgent):
    """An agent whose tool never finishes: it starts `sleep` and waits on it forever."""

    name: ClassVar[str] = "performance"
    ceiling: ClassVar[Severity] = "high"
    pids: str = ""

    def review(self, inp: AgentInput) -> AgentResult:
        tool = subprocess.Popen(["sleep", "3600"])
        Path(self.pids).write_text(f"{os.getpid()}\n{tool.pid}\n")
        tool.wait()
        return AgentResult()


def dead(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever inherited it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")
