"""What an analysis cost: infrastructure from measured resources, DeepWiki, LLM tokens.

Pure functions of measurements and prices. Default infrastructure prices are AWS Fargate
(Linux/x86, us-east-1) on-demand: $0.04048 per vCPU-hour, $0.004445 per GB-hour of memory,
and EBS gp3 storage at $0.08 per GB-month; override them with CODEQUAL_PRICE_* settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HOURS_PER_MONTH = 730.0
GB = 1e9


@dataclass(frozen=True)
class InfraPrices:
    cpu_hour: float = 0.04048
    memory_gb_hour: float = 0.004445
    disk_gb_month: float = 0.08


@dataclass(frozen=True)
class Measured:
    """Resources one component of an analysis used."""

    cpu_seconds: float
    memory_gb_seconds: float
    disk_gb_hours: float

    @classmethod
    def from_usage(
        cls, cpu_seconds: float, peak_memory_bytes: int, wall_seconds: float, disk_bytes: int
    ) -> Measured:
        return cls(
            cpu_seconds=cpu_seconds,
            memory_gb_seconds=max(peak_memory_bytes, 0) / GB * wall_seconds,
            disk_gb_hours=disk_bytes / GB * wall_seconds / 3600.0,
        )

    def to_dict(self) -> dict[str, float]:
        return {
            "cpuSeconds": self.cpu_seconds,
            "memoryGbSeconds": self.memory_gb_seconds,
            "diskGbHours": self.disk_gb_hours,
        }


def infrastructure_cost(measured: Measured, prices: InfraPrices) -> float:
    return (
        measured.cpu_seconds / 3600.0 * prices.cpu_hour
        + measured.memory_gb_seconds / 3600.0 * prices.memory_gb_hour
        + measured.disk_gb_hours * prices.disk_gb_month / HOURS_PER_MONTH
    )


@dataclass(frozen=True)
class ModelPrice:
    input_per_million: float
    output_per_million: float


@dataclass(frozen=True)
class PricingTable:
    """Per-model token prices; unknown models are priced by ``fallback`` and flagged."""

    models: dict[str, ModelPrice]
    fallback: ModelPrice

    @classmethod
    def load(cls, path: Path) -> PricingTable:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        models = {
            str(name): ModelPrice(float(p["input"]), float(p["output"]))
            for name, p in (data.get("models") or {}).items()
        }
        fb = data.get("fallback") or {"input": 10.0, "output": 30.0}
        return cls(models, ModelPrice(float(fb["input"]), float(fb["output"])))

    def price(self, model: str, input_tokens: int, output_tokens: int) -> tuple[float, bool]:
        """(dollars, priced_from_table); False means the fallback price was used."""
        known = self.models.get(model)
        rate = known or self.fallback
        dollars = (
            input_tokens * rate.input_per_million + output_tokens * rate.output_per_million
        ) / 1e6
        return dollars, known is not None


DEFAULT_PRICING = Path(__file__).with_name("pricing.yaml")


def cost_breakdown(
    *,
    analysis: Measured,
    deepwiki: Measured,
    prices: InfraPrices,
    llm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored breakdown; the components sum to ``total``."""
    infra = infrastructure_cost(analysis, prices)
    wiki = infrastructure_cost(deepwiki, prices)
    llm_cost = float(llm["cost"]) if llm else 0.0
    return {
        "currency": "USD",
        "total": infra + wiki + llm_cost,
        "components": {"infrastructure": infra, "deepwiki": wiki, "llm": llm_cost},
        "measured": {"analysis": analysis.to_dict(), "deepwiki": deepwiki.to_dict()},
        "llm": llm,
    }
