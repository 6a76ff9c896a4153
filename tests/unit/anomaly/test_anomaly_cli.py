"""``codequal anomaly scan``: output, exit codes, and what it says when the input is wrong."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from click.testing import CliRunner

from codequal.cli.anomaly_cmd import anomaly

T0 = 1_714_521_600  # 2024-05-01T00:00:00Z


def write_latency(path: Path, spike_at: int | None = 400) -> Path:
    rng = random.Random(3)  # noqa: S311 - test data, not secrets
    rows = ["timestamp,p99"]
    for i in range(600):
        value = 60 * rng.lognormvariate(0, 0.1)
        if spike_at is not None and spike_at <= i < spike_at + 4:
            value *= 2.5
        rows.append(f"{T0 + i * 300},{value:.3f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(anomaly, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_scan_prints_each_window_with_score_and_explanation(tmp_path: Path) -> None:
    code, out, _ = run(
        "scan", str(write_latency(tmp_path / "p99.csv")), "--detector", "latency_drift"
    )
    assert code == 0
    assert "latency_drift: 600 samples from 2024-05-01 00:00:00Z to 2024-05-03 01:55:00Z" in out
    assert "1 anomaly window" in out
    assert "2024-05-02 09:20:00Z" in out  # sample 400
    assert "is 2.7x the expected p99" in out


def test_scan_json_has_the_windows_with_their_numbers(tmp_path: Path) -> None:
    path = write_latency(tmp_path / "p99.csv")
    code, out, _ = run("scan", str(path), "--detector", "latency_drift", "--json")
    assert code == 0
    payload = json.loads(out)
    assert (payload["detector"], payload["samples"]) == ("latency_drift", 600)
    [window] = payload["anomalies"]
    assert window["start"] == str(T0 + 400 * 300)  # sample 400, as written in the file
    assert window["band"][0] is None  # one-sided: no lower bound
    assert window["score"] > 2 and window["baseline"] > 50
    assert window["status"] == "closed"


def test_scan_of_quiet_data_says_so(tmp_path: Path) -> None:
    # Three days that repeat the same daily shape: nothing new, nothing to report.
    rows = [f"{T0 + i * 300},{100 + 50 * math.sin(2 * math.pi * i / 288):.3f}" for i in range(864)]
    path = tmp_path / "daily.csv"
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    code, out, _ = run("scan", str(path))
    assert code == 0
    assert "envelope: 864 samples" in out and "no anomalies" in out


def test_scan_json_dates_each_anomaly_at_detection_as_written_in_the_file(tmp_path: Path) -> None:
    rows = [
        f"2024-05-0{d} {h:02d}:{m:02d}:00,{100 + (m % 10) / 10}"
        for d in (1, 2)
        for h in range(24)
        for m in range(60)
    ]
    rows[2000] = "2024-05-02 09:20:00,900"  # after a day of learning
    path = tmp_path / "per-minute.csv"
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    code, out, _ = run("scan", str(path), "--json")
    assert code == 0
    [found] = json.loads(out)["anomalies"]
    assert found["start"] == found["end"] == "2024-05-02 09:20:00"  # as written in the file
    assert (found["detector"], found["direction"]) == ("envelope", "up")
    assert found["score"] > 1 and "Detected at" in found["explanation"]


def test_repeated_timestamps_are_averaged_by_default_and_refused_on_request(
    tmp_path: Path,
) -> None:
    path = write_latency(tmp_path / "p99.csv")
    path.write_text(path.read_text() + f"{T0 + 300},61.0\n")
    code, out, _ = run("scan", str(path), "--json")
    assert code == 0 and json.loads(out)["samples"] == 600
    code, _, err = run("scan", str(path), "--duplicates", "error")
    assert code == 2 and "repeats line 3" in err


def test_bad_csv_exits_2_with_the_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,value\n2024-05-01T10:00:00Z,1\n2024-05-01 10:05,x\n")
    code, out, err = run("scan", str(path))
    assert code == 2
    assert out == ""
    assert "bad.csv: line 3: value 'x' is not a number" in err


def test_unknown_detector_exits_2_listing_the_names(tmp_path: Path) -> None:
    code, _, err = run("scan", str(write_latency(tmp_path / "p99.csv")), "--detector", "nope")
    assert code == 2
    for name in (
        "disk_exhaustion",
        "failure_rate",
        "latency_drift",
        "memory_exhaustion",
        "robust_z",
    ):
        assert name in err


def test_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = run("scan", str(tmp_path / "absent.csv"))
    assert code == 2
    assert "does not exist" in err


def test_capacity_sets_what_full_means_for_exhaustion(tmp_path: Path) -> None:
    gib = 2**30
    rows = [f"{T0 + 60 * i},{4 * gib + i * gib // 100}" for i in range(120)]
    path = tmp_path / "rss.csv"
    path.write_text("\n".join(rows))
    code, _, err = run("scan", str(path), "--detector", "memory_exhaustion", "--json")
    assert code == 0
    assert "values reach 5.573e+09, above the capacity 1: pass --capacity" in err
    code, out, err = run(
        "scan", str(path), "--detector", "memory_exhaustion", "--capacity", str(5.4 * gib), "--json"
    )
    [window] = json.loads(out)["anomalies"]
    assert (code, err) == (0, "")
    assert window["status"] == "open"
    assert window["details"]["minutes_left"] < 30


def test_capacity_with_a_detector_that_has_none_exits_2(tmp_path: Path) -> None:
    path = write_latency(tmp_path / "p99.csv")
    code, _, err = run("scan", str(path), "--detector", "robust_z", "--capacity", "1")
    assert code == 2
    assert "--capacity applies to memory_exhaustion, disk_exhaustion only" in err
