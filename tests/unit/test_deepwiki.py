"""DeepWiki's cleanup tiers, profile and sweep, with an injected clock and disk reader."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from codequal.analysis.deepwiki import (
    DeepWiki,
    DiskUsage,
    max_age_for,
    plan_cleanup,
    profile_tree,
    size_class,
)

HOUR = 3600.0


@pytest.mark.parametrize(
    ("ratio", "max_age"),
    [
        (0.95, 0.5 * HOUR),
        (0.91, 0.5 * HOUR),
        (0.90, 2 * HOUR),  # "above 90 %": exactly 90 % is the next tier
        (0.80, 2 * HOUR),
        (0.71, 2 * HOUR),
        (0.60, 6 * HOUR),
        (0.51, 6 * HOUR),
        (0.50, 24 * HOUR),
        (0.10, 24 * HOUR),
    ],
)
def test_cleanup_tier_by_disk_usage(ratio: float, max_age: float) -> None:
    assert max_age_for(ratio) == max_age


def test_usage_ratio_leaves_out_the_root_reserve() -> None:
    # 100 blocks, 10 in use, 30 a non-root writer may use, 60 reserved for root: 25 % full, as
    # df says, not 70 % (which would put an almost empty volume in the warning tier).
    assert DiskUsage(total=100, used=10, free=30).ratio == 0.25
    assert DiskUsage(total=100, used=40, free=0).ratio == 1.0  # nothing left to write
    assert DiskUsage(total=0, used=0, free=0).ratio == 0.0


@pytest.mark.skipif(shutil.which("df") is None, reason="needs coreutils df")
def test_workspace_usage_is_what_df_shows(tmp_path: Path) -> None:
    usage = DeepWiki(tmp_path / "ws", None).disk()
    out = subprocess.run(
        ["df", "--output=size,used,avail,pcent", "-B1", str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[-1]
    size, used, avail, pcent = out.split()
    assert usage.total == int(size)
    # Other writers on the volume may move the figures between the two readings.
    assert abs(usage.used - int(used)) < 64 * 2**20
    assert abs(usage.free - int(avail)) < 64 * 2**20
    assert abs(math.ceil(usage.ratio * 100) - int(pcent.rstrip("%"))) <= 1  # df rounds up


def test_plan_removes_only_entries_older_than_the_tier() -> None:
    now = 100_000.0
    entries = [(Path("a"), now - 40 * 60), (Path("b"), now - 20 * 60), (Path("c"), now - 3 * HOUR)]
    assert plan_cleanup(entries, 0.95, now) == [Path("a"), Path("c")]
    assert plan_cleanup(entries, 0.75, now) == [Path("c")]
    assert plan_cleanup(entries, 0.30, now) == []


def test_sweep_applies_the_tier_and_records_bytes_freed(tmp_path: Path) -> None:
    now = 1_000_000.0
    workspace = tmp_path / "ws"
    old, young = workspace / "old-analysis", workspace / "young-analysis"
    for entry, age in ((old, 3 * HOUR), (young, 10 * 60)):
        entry.mkdir(parents=True)
        (entry / "blob").write_bytes(b"x" * 1000)
        os.utime(entry, (now - age, now - age))
    wiki = DeepWiki(
        workspace, None, clock=lambda: now, disk_usage=lambda _p: DiskUsage(100, 80, 20)
    )
    cleanups = wiki.sweep()
    assert [(Path(c.path).name, c.result, c.bytes_freed) for c in cleanups] == [
        ("old-analysis", "success", 1000)
    ]
    assert not old.exists() and young.exists()
    assert cleanups[0].reason == "sweep-7200s"


def test_profile_counts_languages_lines_manifests_and_structure(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("a = 1\nb = 2\n")
    (tmp_path / "web.ts").write_text("let x = 1;\n")
    (tmp_path / "requirements.txt").write_text("flask\n")
    profile = profile_tree(tmp_path)
    assert profile["primaryLanguage"] == "Python"
    assert profile["languages"] == {
        "Python": {"files": 1, "lines": 2},
        "TypeScript": {"files": 1, "lines": 1},
    }
    assert profile["files"] == 3
    assert profile["manifests"] == ["requirements.txt"]
    assert profile["topLevel"] == ["requirements.txt", "src/", "web.ts"]
    assert profile["sizeClass"] == "small"


def test_size_classes_are_bounded() -> None:
    assert [size_class(n) for n in (10, 50_000, 500_000, 5_000_000)] == [
        "small",
        "medium",
        "large",
        "huge",
    ]


def test_availability_is_false_when_the_workspace_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert DeepWiki(blocker / "ws", None).available() is False
    assert DeepWiki(tmp_path / "ws", None).available() is True
    wiki = DeepWiki(tmp_path / "ws2", None)
    wiki.worker_alive = lambda: False
    assert wiki.available() is False
