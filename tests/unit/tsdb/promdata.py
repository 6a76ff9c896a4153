"""Test helpers: synthetic history as OpenMetrics text, and a real Prometheus loaded with it."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
REQUIRE_SERVICES = os.environ.get("CODEQUAL_REQUIRE_SERVICES") == "1"
BUCKETS = ("0.1", "0.25", "0.5", "1", "2.5", "+Inf")


def need_prometheus() -> None:
    """Skip on a machine without Debian's prometheus, unless CI requires it."""
    missing = [p for p in (PROMETHEUS, PROMTOOL) if not Path(p).exists()]
    if missing and not REQUIRE_SERVICES:
        pytest.skip(f"{', '.join(missing)} not installed (apt install prometheus)")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value == math.inf else repr(value)


def history(start_s: int, steps: int, step_s: int = 15) -> str:
    """OpenMetrics text: counters (with a reset), a histogram and gauges, one line per sample.

    Values are deterministic and include irregular increments, so rate extrapolation,
    reset handling and bucket interpolation all get exercised.
    """
    out = ["# HELP demo_requests_total Requests.", "# TYPE demo_requests counter"]
    for mode, code, speed in (("fast", "200", 7), ("fast", "500", 1), ("slow", "200", 3)):
        total = 0
        for i in range(steps):
            total = 0 if (mode == "slow" and i == steps // 2) else total + (i * speed) % 11
            out.append(
                f'demo_requests_total{{code="{code}",mode="{mode}"}} {total} {start_s + i * step_s}'
            )
    out.append("# TYPE demo_latency_seconds histogram")
    for job, skew in (("api", 1), ("web", 3)):
        counts = [0] * len(BUCKETS)
        total_sum = 0.0
        for i in range(steps):
            for b in range(len(BUCKETS)):
                counts[b] += (i % (b + skew) == 0) + b
            total_sum += 0.37 * (i % 5) + 0.01 * skew
            t = start_s + i * step_s
            for b, le in enumerate(BUCKETS):
                out.append(f'demo_latency_seconds_bucket{{job="{job}",le="{le}"}} {counts[b]} {t}')
            out.append(f'demo_latency_seconds_count{{job="{job}"}} {counts[-1]} {t}')
            out.append(f'demo_latency_seconds_sum{{job="{job}"}} {_number(total_sum)} {t}')
    out.append("# TYPE demo_disk_used_bytes gauge")
    for mount, rate in (("/", 4096.0), ("/data", 123.25)):
        for i in range(steps):
            value = 1e9 + rate * i + (i % 7) * 1000.5
            out.append(
                f'demo_disk_used_bytes{{mount="{mount}"}} {_number(value)} {start_s + i * step_s}'
            )
    out.append("# EOF")
    return "\n".join(out) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def create_blocks(openmetrics: Path, tsdb_dir: Path) -> subprocess.CompletedProcess[str]:
    """``promtool tsdb create-blocks-from openmetrics`` on the file (checked by the caller)."""
    return subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@dataclass
class PrometheusServer:
    url: str
    client: httpx.Client

    def query(self, path: str, **params: Any) -> Any:
        response = self.client.get(f"{self.url}/api/v1/{path}", params=params, timeout=60)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]


@contextlib.contextmanager
def prometheus_with(openmetrics: Path, workdir: Path) -> Iterator[PrometheusServer]:
    """The real Prometheus serving the file's history (backfilled with promtool)."""
    tsdb_dir = workdir / "prometheus-data"
    made = create_blocks(openmetrics, tsdb_dir)
    assert made.returncode == 0, made.stderr
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=100y",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process)
        with httpx.Client() as client:
            yield PrometheusServer(f"http://127.0.0.1:{port}", client)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"prometheus exited with {process.returncode}: {err[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.1)  # polling a starting server: there is no event to wait on
    raise AssertionError(f"prometheus at {url} not ready after {timeout} s")


def by_labels(data: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """A query answer's ``data`` as {labels: [(t, value), ...]} for comparison."""
    result = data["result"]
    if data["resultType"] == "scalar":
        return {"scalar": [(float(result[0]), float(result[1]))]}
    rows = {}
    for item in result:
        key = ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items()))
        points = item["values"] if "values" in item else [item["value"]]
        rows[key] = [(float(t), float(v)) for t, v in points]
    return rows


def assert_same(ours: dict[str, Any], theirs: dict[str, Any], what: str, rel: float = 1e-9) -> None:
    """Same result type, series, timestamps, and values equal within ``rel``."""
    assert ours["resultType"] == theirs["resultType"], what
    mine, other = by_labels(ours), by_labels(theirs)
    assert sorted(mine) == sorted(other), what
    for key, points in mine.items():
        assert [t for t, _ in points] == [t for t, _ in other[key]], f"{what}: {key}"
        for (t, a), (_, b) in zip(points, other[key], strict=True):
            same = (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=rel)
            assert same, f"{what}: {key} at {t}: ours {a!r}, Prometheus {b!r}"
