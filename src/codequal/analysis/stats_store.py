"""The analytics read model: each finished analysis's numbers in real columns.

``stats_rows`` is a pure function of the stored analysis (the same expressions the analytics
used to evaluate on the decoded JSON); ``write_stats`` replaces an analysis's rows inside the
caller's transaction, so the read model never disagrees with ``analyses``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from codequal.storage.schema import analyses, analysis_agent_times, analysis_stats

_COMPONENTS = ("infrastructure", "deepwiki", "llm")
_TIMED_STEPS = {
    "seconds_total": "total",
    "seconds_clone": "clone",
    "seconds_knowledge": "check-vector-db",
    "seconds_deepwiki": "trigger-deepwiki",
}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _cost_columns(cost: dict[str, Any] | None) -> dict[str, Any]:
    """NULL ``cost_total`` (no cost stored) keeps an analysis out of cost analytics."""
    components = (cost or {}).get("components") or {}
    llm = (cost or {}).get("llm") or {}
    model = llm.get("model") or None
    return {
        "cost_total": None if cost is None else float(cost.get("total") or 0.0),
        **{f"cost_{name}": _float(components.get(name)) for name in _COMPONENTS},
        "llm_provider": llm.get("provider") or None,
        "llm_model": model,
        # Tokens count only where a model was recorded (the cheaper-model counterfactual).
        "llm_input_tokens": int(llm.get("inputTokens", 0)) if model else None,
        "llm_output_tokens": int(llm.get("outputTokens", 0)) if model else None,
    }


def stats_rows(row: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``analysis_stats`` row and ``analysis_agent_times`` rows of one finished analysis.

    ``row`` has the ``analyses`` columns id, finished_at, status, mode, requested_mode,
    repository_url, trace_id, created_at, started_at, cost, timings and summary, and ``has_cost``:
    whether ``cost`` is not SQL NULL (a JSON null cost counts, as an empty one).
    """
    cost = (row.cost or {}) if row.has_cost else None
    timings: dict[str, Any] = row.timings or {}
    summary: dict[str, Any] = row.summary or {}
    stats = {
        "finished_at": row.finished_at,
        "analysis_id": row.id,
        "status": row.status,
        "mode": row.mode or row.requested_mode,
        "repository_url": row.repository_url,
        "trace_id": row.trace_id,
        "queue_seconds": None if row.started_at is None else row.started_at - row.created_at,
        **_cost_columns(cost),
        "auto_mode": (summary.get("diff") or {}).get("autoMode"),
        "size_class": (summary.get("profile") or {}).get("sizeClass") or "unknown",
        **{column: _float(timings.get(step)) for column, step in _TIMED_STEPS.items()},
    }
    # As cost analytics counts it: 0 when absent, NULL when the analysis stored no cost.
    infra = None if cost is None else stats["cost_infrastructure"] or 0.0
    agents = [
        {
            "finished_at": row.finished_at,
            "analysis_id": row.id,
            "agent": step.removeprefix("agent:"),
            "seconds": float(seconds),
            "analysis_seconds": stats["seconds_total"],
            "cost_infrastructure": infra,
        }
        for step, seconds in timings.items()
        if step.startswith("agent:")
    ]
    return stats, agents


_SOURCE = (
    analyses.c.id,
    analyses.c.finished_at,
    analyses.c.status,
    analyses.c.mode,
    analyses.c.requested_mode,
    analyses.c.repository_url,
    analyses.c.trace_id,
    analyses.c.created_at,
    analyses.c.started_at,
    analyses.c.cost,
    analyses.c.cost.is_not(None).label("has_cost"),
    analyses.c.timings,
    analyses.c.summary,
)


def forget_stats(conn: sa.Connection, analysis_id: str) -> None:
    """Delete an analysis's rows, found by its current finish time (the clustering key).

    The analysis row stays locked (on PostgreSQL) until the caller's transaction ends, so a
    concurrent finish of the same analysis waits and then finds these rows' successors.
    """
    finished = conn.execute(
        sa.select(analyses.c.finished_at).where(analyses.c.id == analysis_id).with_for_update()
    ).scalar()
    if finished is None:
        return
    for table in (analysis_stats, analysis_agent_times):
        conn.execute(
            table.delete().where(
                (table.c.finished_at == finished) & (table.c.analysis_id == analysis_id)
            )
        )


def write_stats(conn: sa.Connection, analysis_id: str) -> None:
    """Insert the rows of a finished analysis as it is stored now (after ``forget_stats``)."""
    row = conn.execute(sa.select(*_SOURCE).where(analyses.c.id == analysis_id)).first()
    if row is None or row.finished_at is None:
        return
    stats, agents = stats_rows(row)
    conn.execute(analysis_stats.insert(), stats)
    if agents:
        conn.execute(analysis_agent_times.insert(), agents)
