"""How long the CLI takes to answer `--version` and `--help`, next to a bare interpreter.

Each command runs as a fresh process, interleaved with `python -c pass` in the same rounds, and
the medians are compared. Target: `--version` and `--help` under 0.3 s. Run:
python bench/bench_cli.py [--rounds N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.3


def codequal() -> list[str]:
    script = shutil.which("codequal", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "codequal"]


CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "codequal --version": [*codequal(), "--version"],
    "codequal --help": [*codequal(), "--help"],
    "codequal serve --help": [*codequal(), "serve", "--help"],
}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, command in CASES.items():
            times[name].append(timed(command))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<24}{'median s':>10}{'p90 s':>9}{'x python':>10}  target")
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
        target = "" if name.startswith(("python", "codequal serve")) else f"< {TARGET_SECONDS}"
        print(f"{name:<24}{median:>10.3f}{p90:>9.3f}{median / base:>10.1f}  {target}")


if __name__ == "__main__":
    main()
