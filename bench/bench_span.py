"""A CodeQual span vs a raw OpenTelemetry SDK span, measured in one run.

    python bench/bench_span.py

(a) raw: an SDK TracerProvider with a BatchSpanProcessor whose exporter discards;
(b) ours: ``Tracing.span(...)`` from ``setup_tracing`` with the store exporter writing to
SQLite in a temp dir. Both open the same span with the same attribute, the same number of
times per round; rounds alternate between the two and the median round is reported. "wall"
is what the calling thread waits (it includes the export threads' share of the GIL), "cpu"
is the calling thread's own CPU time. Target: ours / raw <= 1.2.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from codequal.storage import open_database
from codequal.telemetry.stores.spans import SpanStore
from codequal.telemetry.tracing import Tracing, setup_tracing

# Below both processors' queue size, so no span is dropped inside a timed round (a dropped
# span skips the export work and would flatter whichever side dropped it).
ITERATIONS = 5_000
QUEUE_SIZE = 8_192
ROUNDS = 15
TARGET = 1.2


class DiscardExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def raw_loop(provider: TracerProvider) -> Callable[[int], None]:
    tracer = provider.get_tracer("bench")

    def run(n: int) -> None:
        for i in range(n):
            with tracer.start_as_current_span("step", attributes={"i": i}):
                pass

    return run


def our_loop(tracing: Tracing) -> Callable[[int], None]:
    def run(n: int) -> None:
        for i in range(n):
            with tracing.span("step", i=i):
                pass

    return run


def measure(run: Callable[[int], None], flush: Callable[[], object]) -> tuple[float, float]:
    """(wall ns per span, calling-thread CPU ns per span) for one round."""
    flush()  # start each round with empty export queues
    wall0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
    run(ITERATIONS)
    wall, cpu = time.perf_counter_ns() - wall0, time.thread_time_ns() - cpu0
    return wall / ITERATIONS, cpu / ITERATIONS


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        raw_provider = TracerProvider(shutdown_on_exit=False)
        raw_provider.add_span_processor(
            BatchSpanProcessor(DiscardExporter(), max_queue_size=QUEUE_SIZE)
        )
        tracing = setup_tracing(
            service="bench",
            version="0",
            environment="bench",
            span_store=SpanStore(db),
            otlp_endpoint=None,
        )
        cases = {
            "raw OpenTelemetry SDK span": (raw_loop(raw_provider), raw_provider.force_flush),
            "codequal Tracing.span (store exporter, SQLite)": (our_loop(tracing), tracing.flush),
        }
        for run, flush in cases.values():  # warm up imports, caches and the SQLite file
            run(2_000)
            flush()
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(ROUNDS):
            for name, (run, flush) in cases.items():
                results[name].append(measure(run, flush))
        tracing.shutdown()
        raw_provider.shutdown()
        db.dispose()
    return report(results)


def report(results: dict[str, list[tuple[float, float]]]) -> int:
    medians = {
        name: (statistics.median(w for w, _ in rows), statistics.median(c for _, c in rows))
        for name, rows in results.items()
    }
    (raw_wall, raw_cpu), (our_wall, our_cpu) = medians.values()
    print(f"{ITERATIONS} spans x {ROUNDS} rounds, median round")
    print(f"{'case':<50} {'wall ns/span':>13} {'cpu ns/span':>12}")
    for name, (wall, cpu) in medians.items():
        print(f"{name:<50} {wall:>13.0f} {cpu:>12.0f}")
    wall_ratio, cpu_ratio = our_wall / raw_wall, our_cpu / raw_cpu
    print(f"{'ratio ours / raw':<50} {wall_ratio:>12.2f}x {cpu_ratio:>11.2f}x")
    verdict = "meets" if wall_ratio <= TARGET else "misses"
    print(f"wall ratio {verdict} the target of <= {TARGET}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
