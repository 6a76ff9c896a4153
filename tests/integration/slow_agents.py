"""Agents for the deadline tests, in a module the agent's worker process imports quickly."""

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
