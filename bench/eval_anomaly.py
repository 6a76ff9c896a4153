"""Precision and recall of every anomaly detector on labelled synthetic series.

Run: ``python bench/eval_anomaly.py [--seeds N] [--detector NAME]`` (minutes for 10 seeds).
For each detector and each shape of ``codequal.analytics.anomaly.synthetic`` (spike, level
shift, trend, seasonality with noise, quiet noise) it generates N seeded series of the kind
that detector watches, runs the detector over the whole series with ``now`` at the last
sample, and compares the anomaly windows it reports with the planted ones. A reported window
is a true positive when it overlaps a planted window; recall is the share of planted windows
some report overlaps. Shapes that plant nothing for a detector (quiet noise; spikes and steps
that are not exhaustion) have no recall, and every window reported on them is a false
positive.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import NamedTuple

from codequal.analytics.anomaly import DETECTORS
from codequal.analytics.anomaly.synthetic import SHAPES, Kind, Labelled, Shape, dataset, overlaps

KIND_OF: dict[str, Kind] = {
    "envelope": "throughput",
    "failure_rate": "ratio",
    "latency_drift": "latency",
    "robust_z": "throughput",
    "memory_exhaustion": "memory",
    "disk_exhaustion": "disk",
}


class Score(NamedTuple):
    planted: int
    found: int  # planted windows overlapped by a report
    reported: int
    true_reports: int  # reports overlapping a planted window
    seconds: float

    def precision(self) -> str:
        return _ratio(self.true_reports, self.reported)

    def recall(self) -> str:
        return _ratio(self.found, self.planted)


def _ratio(part: int, whole: int) -> str:
    return f"{part / whole:.2f}" if whole else "-"


def evaluate(detector: str, shape: Shape, seeds: int) -> Score:
    """Run one detector over ``seeds`` series of one shape; totals over all of them."""
    planted = found = reported = true_reports = 0
    elapsed = 0.0
    for case in dataset(KIND_OF[detector], shape, seeds):
        started = time.perf_counter()
        anomalies = DETECTORS[detector].detect(case.series, case.series.timestamps[-1])
        elapsed += time.perf_counter() - started
        spans = [(a.start, a.end) for a in anomalies]
        planted += len(case.windows)
        found += sum(any(overlaps(s, e, w) for s, e in spans) for w in case.windows)
        reported += len(spans)
        true_reports += sum(_hits(s, e, case) for s, e in spans)
    return Score(planted, found, reported, true_reports, elapsed)


def _hits(start: float, end: float, case: Labelled) -> bool:
    return any(overlaps(start, end, w) for w in case.windows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="series per detector and shape")
    parser.add_argument("--detector", choices=sorted(DETECTORS), help="only this detector")
    args = parser.parse_args()
    seeds = args.seeds
    names = [args.detector] if args.detector else list(DETECTORS)
    print(f"{seeds} seeded series per detector and shape; Python {sys.version.split()[0]}")
    header = (
        f"{'detector':<18} {'shape':<12} {'planted':>7} {'found':>5} {'reported':>8} "
        f"{'false':>5} {'precision':>9} {'recall':>6} {'ms/series':>9}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        for shape in SHAPES:
            s = evaluate(name, shape, seeds)
            print(
                f"{name:<18} {shape:<12} {s.planted:>7} {s.found:>5} {s.reported:>8} "
                f"{s.reported - s.true_reports:>5} {s.precision():>9} {s.recall():>6} "
                f"{s.seconds / seeds * 1000:>9.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
