"""Wires the pipeline for the server and the CLI: stores, DeepWiki, orchestrator, workers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from codequal.analysis.costs import DEFAULT_PRICING, InfraPrices, PricingTable
from codequal.analysis.deepwiki import DeepWiki
from codequal.analysis.jobs import WorkerPool
from codequal.analysis.knowledge import KnowledgeStore
from codequal.analysis.orchestrator import Orchestrator, initialise_counters
from codequal.analysis.providers import LLMProvider, OpenAICompatible
from codequal.analysis.store import AnalysisRequest, AnalysisStore
from codequal.config import Settings
from codequal.storage.db import Database
from codequal.telemetry.setup import Telemetry

SWEEP_INTERVAL = 300.0


@dataclass
class AnalysisService:
    store: AnalysisStore
    deepwiki: DeepWiki
    orchestrator: Orchestrator
    pool: WorkerPool
    _stop: threading.Event

    @classmethod
    def build(cls, settings: Settings, db: Database, telemetry: Telemetry) -> AnalysisService:
        provider = build_provider(settings)
        initialise_counters([provider.name] if provider is not None else [])
        deepwiki = DeepWiki(settings.resolved_deepwiki_dir, db)
        pricing = PricingTable.load(settings.pricing_file or DEFAULT_PRICING)
        orchestrator = Orchestrator(
            deepwiki=deepwiki,
            knowledge=KnowledgeStore(db),
            telemetry=telemetry,
            prices=InfraPrices(
                settings.price_cpu_hour, settings.price_memory_gb_hour, settings.price_disk_gb_month
            ),
            pricing=pricing,
            provider=provider,
            agent_timeout=settings.agent_timeout,
            cost_alert=settings.analysis_cost_alert,
            background=_in_thread,
        )
        store = AnalysisStore(db)
        pool = WorkerPool(store, orchestrator, size=settings.max_concurrent_analyses)
        deepwiki.worker_alive = pool.alive
        return cls(store, deepwiki, orchestrator, pool, threading.Event())

    def start(self) -> None:
        self.pool.start()
        threading.Thread(target=self._sweeper, name="cq-deepwiki-sweep", daemon=True).start()

    def submit(self, request: AnalysisRequest) -> str:
        analysis_id = self.store.create(request, time.time())
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


def build_provider(settings: Settings) -> LLMProvider | None:
    if not settings.llm_base_url:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return OpenAICompatible(settings.llm_base_url, settings.llm_model, key)


def _in_thread(fn: object) -> None:
    threading.Thread(target=fn, name="cq-knowledge-refresh", daemon=True).start()  # type: ignore[arg-type]
