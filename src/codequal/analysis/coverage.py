"""What an analysis read and what it did not (pure): files changed, files each agent analysed,
files skipped with the reason, and whether the result is complete.

An analysis is ``partial`` when an agent failed or ran out of time, when an agent skipped a
file it should have read (it did not parse, was too large, made its tool crash or hang), or
when deep mode's summary could not be written: a clean-looking report must mean everything
was read. Binary files and files excluded by configuration are listed but are not gaps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from codequal.analysis.agents.base import AgentTimeout, ChangedFile, Skip
from codequal.analysis.supervisor import AgentRun


@dataclass(frozen=True)
class Coverage:
    changed: int
    runs: tuple[AgentRun, ...]
    skipped: tuple[Skip, ...]  # the orchestrator's own (binary, excluded) and every agent's

    @classmethod
    def of(
        cls, changed: Sequence[ChangedFile], runs: Iterable[AgentRun], own: Iterable[Skip]
    ) -> Coverage:
        runs = tuple(runs)
        skipped = (*own, *(s for r in runs for s in r.result.skipped))
        return cls(len(changed), runs, tuple(sorted(skipped, key=lambda s: (s.path, s.agent))))

    def gaps(self) -> list[str]:
        """Sentences saying why the analysis is incomplete (empty: it is complete)."""
        reasons = []
        for run in self.runs:
            if run.error is not None:
                what = "ran out of time" if isinstance(run.error, AgentTimeout) else "failed"
                reasons.append(f"agent {run.name} {what}: {run.error.message}")
        incomplete = Counter(s.reason for s in self.skipped if s.incomplete)
        if incomplete:
            files = len({s.path for s in self.skipped if s.incomplete})
            kinds = ", ".join(f"{reason} {n}" for reason, n in sorted(incomplete.items()))
            reasons.append(f"{files} changed file(s) not fully analysed ({kinds})")
        return reasons

    def to_dict(self) -> dict[str, Any]:
        analysed = {path for run in self.runs for path in run.result.analysed}
        return {
            "filesChanged": self.changed,
            "filesAnalysed": len(analysed),
            "agents": {run.name: _agent(run) for run in self.runs},
            "skipped": [
                {
                    "file": s.path,
                    "agent": s.agent,
                    "reason": s.reason,
                    "detail": s.detail,
                    "couldHide": s.could_hide if s.incomplete else None,
                }
                for s in self.skipped
            ],
        }


def _agent(run: AgentRun) -> dict[str, Any]:
    status = "ok"
    if run.error is not None:
        status = "timeout" if isinstance(run.error, AgentTimeout) else "failed"
    return {
        "status": status,
        "analysed": len(run.result.analysed),
        "skipped": len(run.result.skipped),
        "seconds": round(run.seconds, 3),
        "error": run.error.message if run.error is not None else None,
        "couldHide": run.ceiling if run.error is not None else None,
    }
