"""Costs and insights aggregated by the database equal the ones computed from the records.

Every analysis here is stored the way the service stores it (create, claim, finish); the
reference is the report built from the decoded rows (``cost_records`` / ``analysis_facts``),
which is what the service computed before the aggregation moved into SQL.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from codequal.analysis.costs import ModelPrice, PricingTable
from codequal.analysis.store import AnalysisRequest, AnalysisStore, Outcome
from codequal.analytics.costs import DAY, cost_report
from codequal.analytics.insights import insights_report
from codequal.analytics.store import AnalyticsQueries
from codequal.storage import Database
from codequal.storage.db import MIGRATIONS
from codequal.storage.schema import analyses, analysis_agent_times, analysis_stats, metadata

PRICING = PricingTable(
    {"gpt-4o": ModelPrice(2.5, 10.0), "gpt-4o-mini": ModelPrice(0.15, 0.6)},
    ModelPrice(10.0, 30.0),
)
T0 = 1_750_000_000.0
MODES = ("quick", "comprehensive", "deep")


def generator(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data


def outcome(rng: random.Random) -> Outcome:
    """An outcome shaped like the pipeline's, with the optional parts sometimes missing."""
    timings = {"clone": rng.uniform(0.5, 20), "diff": rng.uniform(0.05, 1)}
    if rng.random() < 0.9:
        timings["check-vector-db"] = rng.uniform(0.001, 0.05)
    if rng.random() < 0.3:
        timings["trigger-deepwiki"] = rng.uniform(10, 120)
    for agent in rng.sample(("security", "codeQuality", "performance", "architecture"), 3):
        timings[f"agent:{agent}"] = rng.lognormvariate(1, 0.8)
    timings["total"] = sum(timings.values()) + rng.uniform(0.1, 2)
    llm = None
    if rng.random() < 0.5:
        model = rng.choice(("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku"))
        tokens_in, tokens_out = rng.randint(2_000, 40_000), rng.randint(200, 3_000)
        llm = {"provider": "openai" if model.startswith("gpt") else "anthropic", "model": model,
               "inputTokens": tokens_in, "outputTokens": tokens_out,
               "cost": (tokens_in * 0.15 + tokens_out * 0.6) / 1e6}  # fmt: skip
    infra = timings["total"] * 2e-5
    wiki = timings.get("trigger-deepwiki", 0.0) * 3e-5
    llm_cost = llm["cost"] if llm else 0.0
    cost = {"currency": "USD", "total": infra + wiki + llm_cost, "llm": llm,
            "components": {"infrastructure": infra, "deepwiki": wiki, "llm": llm_cost}}  # fmt: skip
    sized = rng.random() < 0.8
    profile = {"sizeClass": rng.choice(("small", "medium", "large"))} if sized else None
    summary = {"diff": {"autoMode": rng.choice(MODES)}, "profile": profile}
    failed = rng.random() < 0.1
    return Outcome("failed" if failed else "completed", rng.choice(MODES), "test", timings, cost,
                   summary=summary, error_type="timeout" if failed else None)  # fmt: skip


def seed(db: Database, count: int, rng: random.Random) -> None:
    store = AnalysisStore(db)
    for i in range(count):
        created = T0 + rng.uniform(0, 3 * DAY)
        request = AnalysisRequest(f"https://git.example/r{i % 7}", "main", "feature", "auto")
        analysis_id = store.create(request, created)
        if rng.random() < 0.95:  # the rest fail before a worker claims them
            store.claim("w1", created + rng.uniform(0, 90), analysis_id)
        store.finish(analysis_id, outcome(rng), created + rng.uniform(100, 400))


def assert_same(got: Any, want: Any, path: str = "") -> None:
    """Equal structure; numbers equal up to summation order."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), path
        for key in want:
            assert_same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), path
    else:
        assert got == want, path


def reports(db: Database, start: float, end: float, threshold: float | None) -> list[Any]:
    q = AnalyticsQueries(db)
    kw: dict[str, Any] = {"start": start, "end": end, "daily_budget": 0.05,
                          "analysis_threshold": threshold, "pricing": PRICING}  # fmt: skip
    spans = q.span_facts(start, end)
    return [
        cost_report(q.cost_totals(start, end, threshold), **kw),
        cost_report(q.cost_records(start, end), **kw),
        insights_report(q.insight_totals(start, end), spans, start=start, end=end),
        insights_report(q.analysis_facts(start, end), spans, start=start, end=end),
    ]


@pytest.mark.parametrize(
    ("start", "end", "threshold"),
    [
        (T0, T0 + 4 * DAY, 0.004),  # everything
        (T0 + DAY, T0 + 2 * DAY, None),  # one day, no threshold
        (T0 + DAY, T0 + DAY + 1_500, 0.0),  # a handful: percentiles of one or two values
        (T0 - DAY, T0, 0.0),  # nothing
    ],
)
def test_database_totals_give_the_report_the_records_give(
    database: Database, start: float, end: float, threshold: float | None
) -> None:
    seed(database, 240, generator(6))
    costs, costs_from_records, insights, insights_from_records = reports(
        database, start, end, threshold
    )
    assert_same(costs, costs_from_records)
    assert_same(insights, insights_from_records)
    for key in ("byMode", "byProvider", "byModel", "byRepository", "byAgent"):
        assert list(costs[key]) == list(costs_from_records[key]), key  # largest spend first
    # Order statistics are the same values, not merely close ones.
    for key in ("p50", "p95", "max"):
        assert costs["perAnalysis"][key] == costs_from_records["perAnalysis"][key]
    for got, want in zip(insights["slowestAgents"], insights_from_records["slowestAgents"],
                         strict=True):  # fmt: skip
        assert (got["p50"], got["p95"]) == (want["p50"], want["p95"])
    assert insights["queueWait"] == insights_from_records["queueWait"]


def test_the_seeded_period_exercises_every_section(database: Database) -> None:
    seed(database, 240, generator(6))
    costs, _, insights, _ = reports(database, T0, T0 + 4 * DAY, 0.004)
    assert costs["perAnalysis"]["analyses"] == 240
    assert sum(costs["byComponent"].values()) == pytest.approx(costs["total"])
    assert {s["action"].split()[0] for s in costs["suggestions"]} == {"Route", "Use"}
    assert costs["overThreshold"] and len(costs["daily"]) == 4
    assert len(insights["slowestAgents"]) == 4 and insights["deepwikiRuns"]
    assert set(insights["cloneTimeBySize"]) == {"small", "medium", "large", "unknown"}
    assert 0 < insights["queueWait"]["analyses"] < 240


def test_finishing_an_analysis_again_replaces_its_numbers(database: Database) -> None:
    store = AnalysisStore(database)
    gen = generator(3)
    analysis_id = store.create(AnalysisRequest("https://git.example/r", "main", "f"), T0)
    store.claim("w1", T0 + 1, analysis_id)
    store.finish(analysis_id, outcome(gen), T0 + 100)
    second = outcome(gen)
    store.finish(analysis_id, second, T0 + 200)
    totals = AnalyticsQueries(database).cost_totals(T0, T0 + DAY, None)
    assert (totals.analyses, totals.total) == (1, pytest.approx(second.cost["total"]))
    insights = AnalyticsQueries(database).insight_totals(T0, T0 + DAY)
    agents = [k.removeprefix("agent:") for k in second.timings if k.startswith("agent:")]
    assert sorted(insights.agents) == sorted(agents)
    assert {spread.count for spread, _ in insights.agents.values()} == {1}


def test_upgrading_fills_in_the_numbers_of_analyses_finished_before(database: Database) -> None:
    """Migration 0008 backfills from the JSON columns; an SQL NULL cost stays out of costs,
    a JSON null one counts as zero (as it did)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    gen = generator(4)
    rows = []
    for i in range(30):
        done = outcome(gen)
        rows.append({"id": f"a{i}", "repository_url": f"r{i % 3}", "base": "m", "head": "f",
                     "requested_mode": "auto", "mode": done.mode, "status": done.status,
                     "created_at": T0 + i, "started_at": T0 + i + 5 if i % 4 else None,
                     "finished_at": T0 + i + 60, "attempts": 1, "timings": done.timings,
                     "cost": None if i == 1 else done.cost, "summary": done.summary})  # fmt: skip
    with database.engine.begin() as conn:
        conn.execute(analyses.insert(), rows)
        conn.execute(analyses.update().where(analyses.c.id == "a0").values(cost=sa.null()))
    database.migrate()
    costs, costs_from_records, insights, insights_from_records = reports(
        database, T0, T0 + DAY, 0.001
    )
    assert costs["perAnalysis"]["analyses"] == 29 and insights["analyses"] == 30
    assert_same(costs, costs_from_records)
    assert_same(insights, insights_from_records)
    with database.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM analysis_stats")).scalar_one() == 30


def test_migration_0008_matches_the_model(database: Database) -> None:
    with database.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    names = (analysis_stats.name, analysis_agent_times.name)
    assert [d for d in diffs if any(name in repr(d) for name in names)] == []
