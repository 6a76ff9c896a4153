"""The analysis pipeline as a service: submit jobs, run them on the worker pool, sweep the
DeepWiki workspace. Built by :func:`codequal.runtime.wiring.build_analysis`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from codequal.analysis.credentials import CredentialBox, split_credentials
from codequal.analysis.deepwiki import DeepWiki
from codequal.analysis.jobs import WorkerPool
from codequal.analysis.orchestrator import Orchestrator
from codequal.analysis.store import AnalysisRequest, AnalysisStore
from codequal.exceptions import AnalysisError

SWEEP_INTERVAL = 300.0


@dataclass
class AnalysisService:
    store: AnalysisStore
    deepwiki: DeepWiki
    orchestrator: Orchestrator
    pool: WorkerPool
    _stop: threading.Event
    credentials: CredentialBox | None = None  # seals the credentials a repository URL holds

    def start(self) -> None:
        self.pool.start()
        threading.Thread(target=self._sweeper, name="cq-deepwiki-sweep", daemon=True).start()

    def sealed(self, request: AnalysisRequest) -> AnalysisRequest:
        """``request`` with the credentials of its URL taken out (shown as ``***``) and
        sealed for the worker that clones."""
        shown, found = split_credentials(request.repository_url)
        if found is None:
            return request
        if self.credentials is None:
            raise AnalysisError("this server cannot keep repository credentials")
        return replace(request, repository_url=shown, credentials=self.credentials.seal(found))

    def submit(self, request: AnalysisRequest) -> str:
        analysis_id = self.store.create(self.sealed(request), time.time())
        self.pool.wake()
        return analysis_id

    def stop(self, timeout: float) -> bool:
        self._stop.set()
        return self.pool.stop(timeout)

    def _sweeper(self) -> None:
        while not self._stop.wait(SWEEP_INTERVAL):
            try:
                self.deepwiki.sweep()
            except Exception as exc:  # noqa: BLE001 - try again at the next interval
                self.orchestrator.telemetry.errors.capture_exception(exc, {"component": "sweep"})
