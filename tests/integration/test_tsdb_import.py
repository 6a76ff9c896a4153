"""``codequal tsdb import``: backfill from OpenMetrics, line-numbered errors, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from codequal.cli.tsdb_cmd import tsdb
from codequal.storage.db import Database
from codequal.storage.schema import tsdb_chunks, tsdb_series
from codequal.tsdb import openmetrics_import
from codequal.tsdb.openmetrics import Problem, Sample
from codequal.tsdb.promql import Matcher, MatchOp
from codequal.tsdb.store import SampleStore

from ..unit.tsdb.promdata import create_blocks, history, need_prometheus

START_S = 1_700_000_000


def run(database_url: str, tmp_path: Path, *args: str) -> Result:
    env = {"CODEQUAL_DATABASE_URL": database_url}
    return CliRunner().invoke(tsdb, ["import", "--data-dir", str(tmp_path), *args], env=env)


def counts(database: Database) -> tuple[int, int]:
    with database.engine.connect() as conn:
        series = conn.execute(sa.select(sa.func.count()).select_from(tsdb_series)).scalar_one()
        chunks = conn.execute(sa.select(sa.func.count()).select_from(tsdb_chunks)).scalar_one()
    return series, chunks


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "history.om"
    path.write_text(history(START_S, steps=600))  # 2.5 h: the data spans two chunk windows
    return path


def test_a_file_promtool_accepts_is_imported_whole(
    database_url: str, database: Database, tmp_path: Path, good_file: Path
) -> None:
    need_prometheus()
    promtool = create_blocks(good_file, tmp_path / "blocks")
    assert promtool.returncode == 0, promtool.stderr
    result = run(database_url, tmp_path, str(good_file))
    assert result.exit_code == 0, result.output
    assert "imported 12600 samples of 21 series" in result.stdout
    assert "2023-11-14T22:13:20+00:00 .. 2023-11-15T00:43:05+00:00" in result.stdout
    store = SampleStore(database)
    name = Matcher(MatchOp.EQUAL, "__name__", "demo_requests_total")
    mode = Matcher(MatchOp.EQUAL, "mode", "slow")
    (slow,) = store.select([name, mode], 0, 2**62)
    assert len(slow.timestamps) == 600
    assert (
        slow.timestamps[0] == START_S * 1000 and slow.timestamps[-1] == (START_S + 599 * 15) * 1000
    )
    assert slow.values[300] == 0  # the counter reset in the file
    assert store.label_values("le") == ["+Inf", "0.1", "0.25", "0.5", "1", "2.5"]


def test_bad_lines_are_listed_with_numbers_and_nothing_is_stored(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.om"
    bad.write_text(
        "# TYPE x gauge\n"
        "x 1 1700000000\n"
        "x 2\n"
        "\n"
        'x{a="1",a="2"} 3 1700000015\n'
        "x 0 1699999999\n"
        "# EOF\n"
    )
    result = run(database_url, tmp_path, str(bad))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"codequal: {bad} was not imported (nothing was stored):"
    assert [line.split(": ", 1)[0].strip() for line in lines[1:]] == [
        f"{bad}:3",
        f"{bad}:4",
        f"{bad}:5",
        f"{bad}:6",
    ]
    assert "has no timestamp" in lines[1] and "blank lines" in lines[2]
    assert "appears more than once" in lines[3] and "not later than the one on line 2" in lines[4]
    assert counts(database) == (0, 0)


def test_promtool_rejects_the_syntax_errors_we_reject(tmp_path: Path) -> None:
    need_prometheus()
    for i, text in enumerate(["x 1 1\n\n# EOF\n", "x 1\n# EOF\n", "x 1 1\n", "x 1_0 1\n# EOF\n"]):
        path = tmp_path / f"bad{i}.om"
        path.write_text(text)
        assert create_blocks(path, tmp_path / f"blocks{i}").returncode != 0, text


def test_many_problems_are_cut_to_twenty_and_counted(database_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.om"
    bad.write_text("".join(f"x{i} oops {i}\n" for i in range(45)) + "# EOF\n")
    result = run(database_url, tmp_path, str(bad))
    assert result.exit_code == 2
    assert result.stderr.count("oops") == 20
    assert result.stderr.rstrip().endswith("... and 25 more problems")


def test_a_failure_while_writing_rolls_everything_back(
    database: Database, good_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = openmetrics_import.samples

    def changed_underfoot(lines: object) -> Iterator[Sample | Problem]:
        for n, item in enumerate(real(lines)):  # type: ignore[arg-type]
            if n == 5000:  # thousands of chunks rows already inserted by now
                yield Problem(9999, "the file changed")
                return
            yield item

    monkeypatch.setattr(openmetrics_import, "samples", changed_underfoot)
    monkeypatch.setattr(openmetrics_import, "INSERT_BATCH", 2)
    with pytest.raises(openmetrics_import.OpenMetricsError, match="the file changed"):
        openmetrics_import.import_openmetrics(database, good_file)
    assert counts(database) == (0, 0)


def test_an_empty_history_imports_nothing(database_url: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.om"
    empty.write_text("# TYPE x gauge\n# EOF\n")
    result = run(database_url, tmp_path, str(empty))
    assert result.exit_code == 0, result.output
    assert "no samples" in result.stdout
