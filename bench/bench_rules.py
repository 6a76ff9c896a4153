"""The whole shipped rule set over 24 h of history for ~2 000 series: ours vs Prometheus.

The history uses CodeQual's own metric names (analyses started / failed by mode and error
type, errors by service, HTTP requests, the analysis duration histogram, DeepWiki and memory
gauges) across 10 to 40 instances, scraped every 15 s. It goes into CodeQual's store and, through
an OpenMetrics file and ``promtool tsdb create-blocks-from openmetrics``, into Debian's
Prometheus. Every expression of the shipped rules (the alerts and the SLO error-ratio
recordings) is then evaluated once at the end of the history on both, as a rule evaluation
round does; the results must agree. Run: python bench/bench_rules.py [--hours 24]
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_tsdb import (
    START_S,
    STEP_S,
    Series,
    TimedSource,
    _counter,
    _disk,
    _ratio,
    agree,
    ingest,
    prometheus,
)
from codequal.alerting.rules import default_rule_files, load_rule_files, parse_rule_file
from codequal.analytics.slo import dump_rules, load_spec
from codequal.storage.db import open_database
from codequal.telemetry.metrics import ANALYSIS_DURATION_BUCKETS
from codequal.tsdb.promql import Engine, to_prometheus_json
from codequal.tsdb.store import SampleStore

MODES = ("quick", "comprehensive", "deep")
LE = [repr(float(b)) for b in ANALYSIS_DURATION_BUCKETS] + ["+Inf"]
CDF = [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 0.88, 0.95, 0.985, 0.997, 1.0]


def instances(n: int) -> list[str]:
    return [f"cq-{i:02}:8080" for i in range(n)]


def generate(steps: int, seed: int = 11) -> list[Series]:
    rng = random.Random(seed)
    out: list[Series] = []

    def add(name: str, labels: dict[str, str], values: array) -> None:
        out.append(({"__name__": name, "job": "codequal", **labels}, values))

    for inst in instances(40):
        for mode in MODES:
            add(
                "codequal_analysis_started_total",
                {"mode": mode, "instance": inst},
                _counter(rng, steps),
            )
            for error in ("timeout", "clone_failed", "unknown_ref", "internal"):
                add(
                    "codequal_analysis_failed_total",
                    {"mode": mode, "error_type": error, "instance": inst},
                    _counter(rng, steps),
                )
    for inst in instances(20):
        for service in ("api", "orchestrator", "deepwiki", "agents", "ingest"):
            for error in ("ValueError", "OSError", "KeyError", "TimeoutError"):
                add(
                    "codequal_errors_total",
                    {"service": service, "error_type": error, "instance": inst},
                    _counter(rng, steps),
                )
        for route in ("/health", "/api/analyses", "/metrics", "/api/monitoring/dashboard", "/"):
            for status in ("200", "500"):
                add(
                    "codequal_http_requests_total",
                    {"method": "GET", "route": route, "status": status, "instance": inst},
                    _counter(rng, steps),
                )
        for mode in MODES:
            out.extend(histogram(rng, steps, mode, inst))
    for inst in instances(10):
        add(
            "codequal_deepwiki_availability",
            {"instance": inst},
            array("d", [0.0 if rng.random() < 0.01 else 1.0 for _ in range(steps)]),
        )
        add("codequal_deepwiki_disk_usage_ratio", {"instance": inst}, _ratio(rng, steps))
        add("codequal_deepwiki_disk_available_bytes", {"instance": inst}, _disk(rng, steps))
        add("codequal_system_memory_usage_ratio", {"instance": inst}, _ratio(rng, steps))
    return out


def histogram(rng: random.Random, steps: int, mode: str, inst: str) -> list[Series]:
    base = {
        "job": "codequal",
        "mode": mode,
        "repository_size": "small",
        "status": "completed",
        "instance": inst,
    }
    buckets = [array("d") for _ in LE]
    count, total, sums = 0, 0.0, array("d")
    for _ in range(steps):
        n = rng.randint(0, 3)
        count += n
        total += n * 42.0 + rng.random()
        for j, cdf in enumerate(CDF):
            buckets[j].append(float(math.floor(count * cdf)))
        sums.append(total)
    name = "codequal_analysis_duration_seconds"
    series: list[Series] = [
        ({"__name__": f"{name}_bucket", **base, "le": le}, b)
        for le, b in zip(LE, buckets, strict=True)
    ]
    series.append(({"__name__": f"{name}_count", **base}, buckets[-1]))
    series.append(({"__name__": f"{name}_sum", **base}, sums))
    return series


def write_openmetrics(path: Path, history: list[Series], steps: int) -> None:
    families: dict[str, list[Series]] = {}
    for series in history:
        families.setdefault(series[0]["__name__"], []).append(series)
    with path.open("w") as out:
        for name, members in families.items():
            out.write(f"# TYPE {name} gauge\n")  # plain samples: the type does not matter here
            for labels, values in members:
                text = ",".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
                out.writelines(
                    f"{name}{{{text}}} {values[i]!r} {START_S + i * STEP_S}\n" for i in range(steps)
                )
        out.write("# EOF\n")


def expressions() -> list[str]:
    """Every alert expression and the SLO recordings that read raw metrics."""
    groups = load_rule_files(default_rule_files())
    groups += parse_rule_file(dump_rules(load_spec()), "<shipped SLOs>")
    found = []
    for group in groups:
        for rule in group.rules:
            name = getattr(rule, "record", None) or ""
            if hasattr(rule, "alert") or name.startswith("slo:sli_error:ratio_rate"):
                found.append(rule.expr)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    args = parser.parse_args()
    steps = args.hours * 3600 // STEP_S
    end_s = START_S + (steps - 1) * STEP_S
    history = generate(steps)
    exprs = expressions()
    print(f"{len(history)} series x {steps} steps; {len(exprs)} rule expressions", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        work = Path(tmp)
        db = open_database(f"sqlite:///{work / 'codequal.db'}")
        db.migrate()
        ingest(SampleStore(db), history, steps)
        om_file, blocks = work / "history.om", work / "prom"
        write_openmetrics(om_file, history, steps)
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om_file), str(blocks)],
            check=True,
            capture_output=True,
        )
        om_file.unlink()
        source = TimedSource(SampleStore(db))  # a fresh store: every sample read from SQLite
        with prometheus(blocks, work) as url:
            report(source, url, end_s, exprs)
        db.dispose()


def report(source: TimedSource, url: str, end_s: int, exprs: list[str]) -> None:
    engine = Engine(source)
    ours_total = theirs_total = 0.0
    disagree = []
    with httpx.Client(timeout=300) as client:
        for expr in exprs:
            started = time.perf_counter()
            ours = to_prometheus_json(engine.instant(expr, end_s * 1000))
            ours_total += time.perf_counter() - started
            started = time.perf_counter()
            theirs = client.get(f"{url}/api/v1/query", params={"query": expr, "time": end_s})
            theirs_total += time.perf_counter() - started
            if not agree(ours, theirs.json()["data"]):
                disagree.append(expr)
    print(f"{'one evaluation round of every shipped rule expression':<56}{'seconds':>10}")
    print(f"{'CodeQual (embedded store on SQLite + our PromQL engine)':<56}{ours_total:>10.3f}")
    print(f"{'  of which reading the store':<56}{source.seconds:>10.3f}")
    print(f"{'Prometheus 2.42 over HTTP (same data)':<56}{theirs_total:>10.3f}")
    print(f"{'ours / Prometheus':<56}{ours_total / theirs_total:>9.1f}x")
    print(f"expressions that disagree: {len(disagree)} of {len(exprs)}")
    for expr in disagree:
        print("  DISAGREE:", expr.replace("\n", " ")[:150])


if __name__ == "__main__":
    main()
