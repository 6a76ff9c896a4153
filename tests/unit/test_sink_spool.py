"""The delivering spool: durable, ordered, capped, retried with backoff, resumed on restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from codequal.telemetry.logging import LogEntry
from codequal.telemetry.sinks.spool import (
    SINK_DROPPED,
    Backoff,
    DeliveringSink,
    DeliveryError,
    Record,
    SendResult,
    Spool,
)


def entry(i: int) -> LogEntry:
    return LogEntry(1_700_000_000.0 + i, "info", "api", f"{i:032x}", f"action {i}")


class ScriptedSink(DeliveringSink):
    """A sink whose destination follows a script of outcomes, one per send."""

    def __init__(self, data_dir: Path, script: list[object] | None = None, **kw: Any) -> None:
        self.script = list(script or [])
        self.received: list[Record] = []
        self.delays: list[float] = []
        self.after_script: object = "ok"
        self.on_send: Callable[[list[Record]], object] = lambda _records: None
        super().__init__(
            "scripted", data_dir, start=False, sleep=self.delays.append, rand=lambda: 0.0, **kw
        )

    def _send(self, records: list[Record]) -> SendResult:
        self.on_send(records)
        step = self.script.pop(0) if self.script else self.after_script
        if isinstance(step, BaseException):
            raise step
        if step == "half":  # every second item fails with a retryable status
            self.received += records[0::2]
            return SendResult(records[1::2])
        if step == "reject-half":
            self.received += records[0::2]
            return SendResult([], failed=len(records[1::2]))
        self.received += records
        return SendResult([])


def drain(sink: DeliveringSink) -> None:
    while sink.deliver_batch():
        pass


def test_spool_survives_reopen_and_keeps_order_and_ids(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "s")
    spool.append([(i, {"n": i}) for i in range(5)])
    first = spool.peek(10)
    spool.ack(first[1].seq)
    spool.close()
    again = Spool(tmp_path, "s")
    assert [r.entry["n"] for r in again.peek(10)] == [2, 3, 4]
    assert [r.id for r in again.peek(10)] == [r.id for r in first[2:]]
    again.append([(9, {"n": 9})])
    assert again.peek(10)[-1].seq == first[-1].seq + 1
    assert len({r.id for r in again.peek(10)}) == 4


def test_spool_truncates_a_record_torn_by_a_crash(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "s")
    spool.append([(i, {"n": i}) for i in range(3)])
    spool.close()
    with spool.path.open("ab") as f:
        f.write(b"\x00\x00\x01\x00{half")
    again = Spool(tmp_path, "s")
    assert [r.entry["n"] for r in again.peek(10)] == [0, 1, 2]
    again.append([(3, {"n": 3})])
    again.close()
    assert [r.entry["n"] for r in Spool(tmp_path, "s").peek(10)] == [0, 1, 2, 3]


def test_spool_over_cap_drops_oldest_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "s", max_bytes=2000)
    dropped = sum(spool.append([(i, {"n": i, "pad": "x" * 80})]) for i in range(100))
    kept = [r.entry["n"] for r in spool.peek(1000)]
    assert dropped == 100 - len(kept) > 0
    assert kept == list(range(100 - len(kept), 100))
    assert spool.size() <= 2000
    spool.close()
    assert [r.entry["n"] for r in Spool(tmp_path, "s").peek(1000)] == kept


def test_spool_compacts_delivered_bytes_without_losing_the_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "s")
    spool.append([(i, {"n": i, "pad": "x" * 2000}) for i in range(1000)])
    spool.ack(spool.peek(900)[-1].seq)
    assert spool.path.stat().st_size < 300_000
    spool.append([(1000, {"n": 1000})])
    spool.close()
    assert [r.entry["n"] for r in Spool(tmp_path, "s").peek(1000)] == list(range(900, 1001))


def test_backoff_is_exponential_jittered_capped_and_honours_retry_after() -> None:
    backoff = Backoff(base=0.5, cap=8.0)
    # rand is the share of the delay jittered away: 0 keeps all of it (full jitter by default)
    assert [backoff.delay(failures, 0.0) for failures in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]
    assert backoff.delay(4, 0.75) == 1.0
    assert backoff.delay(1, 1.0, retry_after=3.0) == 3.0
    assert backoff.delay(1, 1.0, retry_after=100.0) == 8.0


def test_retryable_failures_back_off_then_deliver_in_order(tmp_path: Path) -> None:
    down = DeliveryError("down")
    sink = ScriptedSink(tmp_path, [down, down, down], backoff=Backoff(0.5, 30.0))
    sink.write([entry(i) for i in range(10)])
    assert sink.health() == "ok"
    drain(sink)
    assert sink.delays == [0.5, 1.0, 2.0]
    assert [r.entry["action"] for r in sink.received] == [f"action {i}" for i in range(10)]
    assert sink.spool.depth() == 0
    assert sink.health() == "ok"


def test_retry_after_from_the_destination_sets_the_floor(tmp_path: Path) -> None:
    sink = ScriptedSink(tmp_path, [DeliveryError("429", retry_after=7.0)])
    sink.write([entry(0)])
    drain(sink)
    assert sink.delays == [7.0]


def test_permanent_failure_drops_the_batch_and_moves_on(tmp_path: Path) -> None:
    sink = ScriptedSink(tmp_path, [DeliveryError("400", permanent=True)], batch_size=5)
    sink.write([entry(i) for i in range(8)])
    drain(sink)
    assert [r.entry["action"] for r in sink.received] == [f"action {i}" for i in range(5, 8)]
    assert sink.delays == []
    assert sink.spool.depth() == 0


def test_partial_failure_resends_only_the_failed_items(tmp_path: Path) -> None:
    sink = ScriptedSink(tmp_path, ["half"])
    sink.write([entry(i) for i in range(6)])
    drain(sink)
    ids = [r.id for r in sink.received]
    assert len(ids) == len(set(ids)) == 6
    first = sink.received[0].seq
    assert [r.seq - first for r in sink.received] == [0, 2, 4, 1, 3, 5]
    assert len(sink.delays) == 1


def test_permanently_rejected_items_are_not_resent(tmp_path: Path) -> None:
    sink = ScriptedSink(tmp_path, ["reject-half"])
    sink.write([entry(i) for i in range(6)])
    drain(sink)
    assert len(sink.received) == 3
    assert sink.delays == []


def test_a_sender_bug_is_retried_not_fatal(tmp_path: Path) -> None:
    sink = ScriptedSink(tmp_path, [RuntimeError("bug")])
    sink.write([entry(0)])
    drain(sink)
    assert len(sink.received) == 1


def test_health_is_degraded_while_the_destination_fails(tmp_path: Path) -> None:
    sink = ScriptedSink(tmp_path, [DeliveryError("down")] * 3)
    states: list[str] = []
    sink._sleep = lambda _d: states.append(sink.health())
    sink.write([entry(0)])
    drain(sink)
    assert states == ["degraded"] * 3
    assert sink.health() == "ok"


def test_close_leaves_undelivered_entries_for_the_next_start(tmp_path: Path) -> None:
    sink = ScriptedSink(tmp_path)
    sink.after_script = DeliveryError("down for good")
    sink.write([entry(i) for i in range(4)])
    sink.start()
    assert sink.shutdown(timeout=0.0) is False
    after = ScriptedSink(tmp_path)
    assert after.spool.depth() == 4
    drain(after)
    assert [r.entry["action"] for r in after.received] == [f"action {i}" for i in range(4)]


def test_spool_cap_drops_are_counted_in_the_metric(tmp_path: Path) -> None:
    before = SINK_DROPPED.labels(sink="scripted")._value.get()
    sink = ScriptedSink(tmp_path, max_spool_bytes=1500)
    sink.write([entry(i) for i in range(50)])
    after = SINK_DROPPED.labels(sink="scripted")._value.get()
    assert after - before == 50 - sink.spool.depth() > 0


@pytest.mark.parametrize("count", [1, 500, 501])
def test_batches_never_exceed_batch_size(tmp_path: Path, count: int) -> None:
    sizes: list[int] = []
    sink = ScriptedSink(tmp_path, batch_size=500)
    sink.on_send = lambda records: sizes.append(len(records))
    sink.write([entry(i) for i in range(count)])
    drain(sink)
    assert sum(sizes) == count
    assert max(sizes) <= 500


def test_close_of_the_sink_protocol_uses_the_close_timeout(tmp_path: Path) -> None:
    sink = ScriptedSink(tmp_path, close_timeout=0.0)
    sink.after_script = DeliveryError("down for good")
    sink.write([entry(0)])
    sink.start()
    sink.close()
    assert ScriptedSink(tmp_path).spool.depth() == 1
