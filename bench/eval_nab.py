"""Every anomaly detector, with default settings, on the NAB series in ``../shared/nab``.

Run: ``python bench/eval_nab.py [--nab-dir DIR] [--detector NAME] [--out DIR]``.

For each detector it scans each CSV under ``DIR/data`` (as ``codequal anomaly scan`` does:
duplicated timestamps averaged, judged as of the last row), writes the detection times (each
anomaly's ``start``, as written in the CSV) to ``OUT/<detector>.json``, and scores them with the
folder's own ``score.py`` (NAB's standard profile: 0 never fires, 100 perfect). It prints the
scorer's table per detector, the alarms, the scan time per series, and the published detectors'
scores on the same series (from the folder's README) for comparison.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from codequal.analytics.anomaly import DETECTORS
from codequal.analytics.anomaly.csvio import CSVError, read_labelled

REPO = Path(__file__).resolve().parent.parent
DEFAULT_NAB = REPO.parent / "shared" / "nab"


class Run(NamedTuple):
    detections: dict[str, list[str]]
    alarms: int
    refused: list[str]
    seconds: list[float]  # scan time per series


def scan_all(detector: str, nab: Path) -> Run:
    """One detector over every CSV under ``nab/data``: detection times as written in the file."""
    detections: dict[str, list[str]] = {}
    refused: list[str] = []
    seconds: list[float] = []
    for path in sorted((nab / "data").glob("*/*.csv")):
        name = path.relative_to(nab / "data").as_posix()
        try:
            labelled = read_labelled(path)
        except CSVError as exc:
            refused.append(f"{name}: {exc}")
            continue
        series = labelled.series
        started = time.perf_counter()
        found = DETECTORS[detector].detect(series, series.timestamps[-1])
        seconds.append(time.perf_counter() - started)
        detections[name] = [labelled.text(a.start) for a in found]
    alarms = sum(len(v) for v in detections.values())
    return Run(detections, alarms, refused, seconds)


def score(nab: Path, detections: dict[str, list[str]], out: Path) -> str:
    """The folder's scorer run on ``detections``; its printed table."""
    out.write_text(json.dumps(detections, indent=1) + "\n")
    done = subprocess.run(
        [sys.executable, str(nab / "score.py"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def published(nab: Path) -> list[tuple[str, str]]:
    """The published detectors' scores from the folder's README table."""
    text = (nab / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([^|]+?) \| ([-\d.]+) \|$", text, flags=re.MULTILINE)
    return [(name, value) for name, value in rows if name != "detector"]


def overall(table: str) -> str:
    match = re.search(r"^\s+all\s+(-?[\d.]+|nan)", table, flags=re.MULTILINE)
    return match.group(1) if match else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab-dir", type=Path, default=DEFAULT_NAB, help="the NAB folder")
    parser.add_argument("--detector", choices=sorted(DETECTORS), help="only this detector")
    parser.add_argument("--out", type=Path, help="where to keep the detections JSON files")
    args = parser.parse_args()
    nab: Path = args.nab_dir
    if not (nab / "score.py").is_file():
        parser.error(f"{nab} has no score.py: pass --nab-dir with the NAB folder")
    out = args.out or Path(tempfile.mkdtemp(prefix="eval_nab-"))
    out.mkdir(parents=True, exist_ok=True)
    names = [args.detector] if args.detector else list(DETECTORS)
    summary: list[tuple[str, str, int, float, float]] = []
    for name in names:
        run = scan_all(name, nab)
        table = score(nab, run.detections, out / f"{name}.json")
        print(f"== {name} ==\n{table}", end="")
        for line in run.refused:
            print(f"  refused {line}")
        worst = max(run.seconds, default=0.0)
        mean = sum(run.seconds) / max(len(run.seconds), 1)
        summary.append((name, overall(table), run.alarms, mean, worst))
    print(f"\ndetections in {out}\n")
    print(f"{'detector':<36} {'NAB score':>9} {'alarms':>7} {'s/series':>9} {'worst s':>8}")
    for name, value, alarms, mean, worst in summary:
        print(f"{name:<36} {value:>9} {alarms:>7} {mean:>9.3f} {worst:>8.3f}")
    for name, value in published(nab):
        print(f"{name + ' (published)':<36} {value:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
