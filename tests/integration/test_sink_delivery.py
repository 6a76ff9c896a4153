"""Loki and Elasticsearch sinks against fake destinations on loopback that check the wire format.

The fakes can be down, answer 500 or 429, stall past the client's timeout, or fail half the
items of a bulk. Waiting is real time here (a network is involved) and always bounded.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from codequal.retry import Backoff
from codequal.telemetry.logging import LogEntry, LogPipeline
from codequal.telemetry.sinks.elasticsearch import ElasticsearchSink
from codequal.telemetry.sinks.loki import LokiSink
from codequal.telemetry.sinks.spool import SINK_FAILED, SINK_RETRIED, DeliveringSink

from ..helpers import LoopbackReceiver, eventually

FAST = Backoff(base=0.01, cap=0.1)
LOKI_LABELS = {"service", "level", "environment"}


class Fake(LoopbackReceiver):
    """A destination: arrivals as (id, action) in order, wire errors, a script of answers."""

    def __init__(self, kind: str, port: int) -> None:
        super().__init__(port)
        self.kind = kind
        self.script: deque[str] = deque()
        self.arrivals: list[tuple[str, str]] = []
        self.stalled_ids: set[str] = set()
        self.wire_errors: list[str] = []
        self.requests = 0
        self._lock = threading.Lock()

    def handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        status, answer = self.answer(path, headers["Content-Type"], body)
        return status, answer, {}

    def answer(self, path: str, ctype: str, body: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.requests += 1
            mode = self.script.popleft() if self.script else "ok"
        if mode in ("500", "429", "400"):
            return int(mode), b'{"error": "scripted"}'
        try:
            items = (
                self.parse_loki(path, ctype, body)
                if self.kind == "loki"
                else self.parse_es(path, ctype, body)
            )
        except (AssertionError, ValueError, KeyError, TypeError) as exc:
            self.wire_errors.append(repr(exc))
            return 400, b'{"error": "bad wire format"}'
        if mode == "half":
            statuses = [201 if i % 2 == 0 else 503 for i in range(len(items))]
        else:
            statuses = [201] * len(items)
        with self._lock:
            self.arrivals += [item for item, s in zip(items, statuses, strict=True) if s == 201]
        if mode == "timeout":  # stored, but the answer comes after the client gave up
            self.stalled_ids |= {item[0] for item in items}
            time.sleep(0.5)
            return 0, b""
        if self.kind == "loki":
            return 204, b""
        answer = {"errors": mode == "half", "items": [{"index": {"status": s}} for s in statuses]}
        return 200, orjson.dumps(answer)

    @staticmethod
    def parse_loki(path: str, ctype: str, body: bytes) -> list[tuple[str, str]]:
        assert path == "/loki/api/v1/push", path
        assert ctype == "application/json", ctype
        payload = orjson.loads(body)
        assert set(payload) == {"streams"}
        items = []
        for stream in payload["streams"]:
            assert set(stream) == {"stream", "values"}
            assert set(stream["stream"]) == LOKI_LABELS, stream["stream"]
            assert all(isinstance(v, str) for v in stream["stream"].values())
            for value in stream["values"]:
                assert len(value) == 2 and value[0].isdigit() and len(value[0]) == 19, value
                line = orjson.loads(value[1])
                assert line["level"] == stream["stream"]["level"]
                items.append((line["id"], line["action"]))
        return items

    @staticmethod
    def parse_es(path: str, ctype: str, body: bytes) -> list[tuple[str, str]]:
        assert path == "/_bulk", path
        assert ctype == "application/x-ndjson", ctype
        assert body.endswith(b"\n")
        lines = body.splitlines()
        assert len(lines) % 2 == 0
        items = []
        for action_line, doc_line in zip(lines[0::2], lines[1::2], strict=True):
            action = orjson.loads(action_line)["index"]
            assert set(action) == {"_index", "_id"}
            assert action["_index"].startswith("codequal-logs-") and len(action["_index"]) == 24
            doc = orjson.loads(doc_line)
            assert doc["@timestamp"] == doc["timestamp"]
            items.append((action["_id"], doc["action"]))
        return items

    def first_arrivals(self) -> list[str]:
        """Actions in first-arrival order, each id once."""
        seen: set[str] = set()
        out = []
        for item_id, action in list(self.arrivals):
            if item_id not in seen:
                seen.add(item_id)
                out.append(action)
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["loki", "elasticsearch"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake(kind: str) -> Iterator[Fake]:
    destination = Fake(kind, free_port())
    yield destination
    destination.stop()


def make_sink(fake: Fake, data_dir: Path, **kw: Any) -> DeliveringSink:
    kw.setdefault("backoff", FAST)
    if fake.kind == "loki":
        return LokiSink(fake.url, data_dir, {"environment": "test"}, **kw)
    return ElasticsearchSink(fake.url, data_dir, **kw)


def entries(n: int, start: int = 0) -> list[LogEntry]:
    base = time.time()
    return [
        LogEntry(base + i * 1e-5, "info", "api", f"{i:032x}", f"n{i}")
        for i in range(start, start + n)
    ]


def p99(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.99)]


def timed_emits(pipeline: LogPipeline, batch: list[LogEntry]) -> list[float]:
    times = []
    for entry in batch:
        t0 = time.perf_counter()
        pipeline.emit(entry)
        times.append(time.perf_counter() - t0)
    return times


def test_down_destination_under_load_gets_all_10000_in_order_without_slowing_callers(
    fake: Fake, tmp_path: Path
) -> None:
    sink = make_sink(fake, tmp_path)
    pipeline = LogPipeline([sink], max_queue=20_000, flush_interval=0.05)
    pipeline.start()
    try:
        down = timed_emits(pipeline, entries(10_000))
        assert pipeline.flush(10.0)
        assert sink.spool.depth() == 10_000
        assert sink.health() == "degraded"
        fake.start()
        eventually(lambda: len(set(fake.arrivals)) >= 10_000)
        up = timed_emits(pipeline, entries(2_000, start=10_000))
        eventually(lambda: len(set(fake.arrivals)) >= 12_000)
    finally:
        pipeline.close(5.0)
    assert fake.first_arrivals() == [f"n{i}" for i in range(12_000)]
    assert fake.wire_errors == []
    assert p99(down) < 0.005, f"p99 emit while down {p99(down) * 1e3:.2f} ms"
    assert p99(down) < max(0.001, 5 * p99(up)), (p99(down), p99(up))
    assert sink.health() == "ok"


@pytest.mark.parametrize("answers", [["500"] * 3, ["429", "429"], ["timeout"], ["half", "half"]])
def test_failing_answers_converge_with_no_duplicates_beyond_retried_ids(
    fake: Fake, tmp_path: Path, answers: list[str]
) -> None:
    if fake.kind == "loki" and "half" in answers:
        pytest.skip("Loki pushes are all-or-nothing")
    fake.script.extend(answers)
    fake.start()
    retried = SINK_RETRIED.labels(sink=fake.kind)._value.get()
    sink = make_sink(fake, tmp_path, timeout=0.2, batch_size=20)
    sink.write(entries(50))
    try:
        eventually(lambda: len(set(fake.arrivals)) >= 50 and not sink.spool.depth())
    finally:
        sink.shutdown(2.0)
    arrived = fake.first_arrivals()
    assert sorted(arrived) == sorted(f"n{i}" for i in range(50))
    # Retried items of a batch may land after their neighbours, never after the next batch.
    batch_of = [int(action[1:]) // 20 for action in arrived]
    assert batch_of == sorted(batch_of)
    if "half" not in answers:
        assert arrived == [f"n{i}" for i in range(50)]
    ids = [item_id for item_id, _ in fake.arrivals]
    duplicated = {i for i in ids if ids.count(i) > 1}
    assert duplicated <= fake.stalled_ids
    assert SINK_RETRIED.labels(sink=fake.kind)._value.get() > retried
    assert fake.wire_errors == []


def test_a_4xx_answer_drops_the_batch_counts_it_and_delivery_goes_on(
    fake: Fake, tmp_path: Path
) -> None:
    fake.script.append("400")
    fake.start()
    failed = SINK_FAILED.labels(sink=fake.kind)._value.get()
    sink = make_sink(fake, tmp_path, batch_size=10, start=False)
    sink.write(entries(15))
    sink.start()
    try:
        eventually(lambda: not sink.spool.depth())
    finally:
        sink.shutdown(2.0)
    assert fake.first_arrivals() == [f"n{i}" for i in range(10, 15)]
    assert SINK_FAILED.labels(sink=fake.kind)._value.get() - failed == 10


def test_a_restarted_sink_delivers_what_the_previous_one_left_in_the_spool(
    fake: Fake, tmp_path: Path
) -> None:
    first = make_sink(fake, tmp_path)
    first.write(entries(300))
    assert first.shutdown(0.2) is False
    fake.start()
    second = make_sink(fake, tmp_path)
    try:
        eventually(lambda: not second.spool.depth())
    finally:
        assert second.shutdown(2.0) is True
    assert fake.first_arrivals() == [f"n{i}" for i in range(300)]
