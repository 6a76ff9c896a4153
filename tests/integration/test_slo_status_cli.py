"""``codequal slo [status]`` reads the SLOs' ratios from the stored metric history."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from click.testing import CliRunner

from codequal.analytics.reports import compute_slo
from codequal.cli import main
from codequal.cli.slo_cmd import slo_status
from codequal.storage import open_database
from codequal.tsdb.store import SampleStore

STARTED = {"__name__": "codequal_analysis_started_total", "mode": "quick"}
FAILED = {"__name__": "codequal_analysis_failed_total", "mode": "quick", "error_type": "timeout"}


def seed_history(data_dir: Path, now: float) -> SampleStore:
    """Two hours at one scrape a minute: 10 analyses a minute, 1 of them failing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(f"sqlite:///{data_dir / 'codequal.db'}")
    db.migrate()
    store = SampleStore(db)
    store.append(
        sample
        for i in range(121)
        for sample in (
            (STARTED, round((now - 7200 + 60 * i) * 1000), 10.0 * i),
            (FAILED, round((now - 7200 + 60 * i) * 1000), 1.0 * i),
        )
    )
    store.flush()  # the CLI opens its own store: it reads what is stored
    return store


def test_slo_json_reports_burn_rates_and_budget_from_the_stored_history(tmp_path: Path) -> None:
    now = time.time()
    seed_history(tmp_path, now)
    result = CliRunner().invoke(main, ["slo", "--json", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    statuses = {s["name"]: s for s in orjson.loads(result.output)["slos"]}
    success = statuses["analysis-success"]
    assert success["window"] == "30d"
    assert abs(success["burnRates"]["1h"] - 10.0) < 0.5  # 10 % failing on a 1 % budget
    assert success["sli"] is not None and abs(success["sli"] - 0.9) < 0.01
    assert statuses["api-availability"]["sli"] is None  # no traffic: no made-up number


def test_since_replaces_the_compliance_window_and_status_prints_a_table(tmp_path: Path) -> None:
    now = time.time()
    seed_history(tmp_path, now)
    runner = CliRunner()
    result = runner.invoke(main, ["slo", "status", "--since", "1h", "--json",
                                  "--data-dir", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (success,) = [s for s in orjson.loads(result.output)["slos"] if s["name"] == "analysis-success"]
    assert success["window"] == "60m"
    assert success["errorBudget"]["remainingRatio"] < 0  # 10x the budget burned over the hour
    # Piped (no terminal, no COLUMNS): every SLO name is printed whole, not cut to 80 columns.
    table = runner.invoke(main, ["slo", "--data-dir", str(tmp_path)], env={"COLUMNS": None})
    assert table.exit_code == 0, table.output
    ids = [s["id"] for s in orjson.loads(result.output)["slos"]]
    assert "SLO status" in table.output and "…" not in table.output
    assert all(f" {slo_id} " in table.output for slo_id in ids), table.output
    bad = runner.invoke(main, ["slo", "--since", "soon", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "like 30m, 24h, 7d" in bad.output


def test_status_without_a_window_matches_the_api_computation(tmp_path: Path) -> None:
    now = time.time()
    store = seed_history(tmp_path, now)
    assert slo_status(store, now) == compute_slo(store, now)
