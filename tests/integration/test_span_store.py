"""Spans through the store exporter into SQLite and PostgreSQL, read back by trace id."""

from __future__ import annotations

import pytest

from codequal.storage import Database
from codequal.telemetry.stores.spans import SpanRecord, SpanStore
from codequal.telemetry.tracing import setup_tracing

TRACE = "0af7651916cd43dd8448eb211c80319c"


def record(
    span_id: str, parent: str | None, start: float, end: float, **extra: object
) -> SpanRecord:
    return SpanRecord(
        trace_id=TRACE,
        span_id=span_id,
        parent_span_id=parent,
        name=f"step-{span_id[-1]}",
        kind="INTERNAL",
        service="codequal",
        start_ts=start,
        end_ts=end,
        duration=end - start,
        status="OK",
        **extra,  # type: ignore[arg-type]
    )


def test_exported_span_tree_is_queryable_by_trace_id_with_parent_links(
    database: Database,
) -> None:
    store = SpanStore(database)
    tracing = setup_tracing(
        service="codequal",
        version="0.1.0",
        environment="test",
        span_store=store,
        otlp_endpoint=None,
    )
    with tracing.span("analysis", mode="quick", score=float("nan")) as root:
        with tracing.span("deepwiki"), tracing.span("clone"):
            pass
        with pytest.raises(RuntimeError), tracing.span("agent.security"):
            raise RuntimeError("provider down")
    assert tracing.flush(timeout=10)
    tracing.shutdown()

    trace_id = f"{root.get_span_context().trace_id:032x}"
    spans = store.trace(trace_id)
    by_name = {s.name: s for s in spans}
    assert [s.name for s in spans] == ["analysis", "deepwiki", "clone", "agent.security"]
    assert by_name["analysis"].parent_span_id is None
    assert by_name["deepwiki"].parent_span_id == by_name["analysis"].span_id
    assert by_name["clone"].parent_span_id == by_name["deepwiki"].span_id
    assert by_name["agent.security"].parent_span_id == by_name["analysis"].span_id
    assert by_name["analysis"].attributes == {"mode": "quick", "score": "nan"}
    assert by_name["agent.security"].status == "ERROR"
    assert by_name["agent.security"].events[0]["attributes"]["exception.message"] == (
        "provider down"
    )

    [tree] = store.tree(trace_id)
    assert tree["name"] == "analysis"
    assert [c["name"] for c in tree["children"]] == ["deepwiki", "agent.security"]
    assert [c["name"] for c in tree["children"][0]["children"]] == ["clone"]
    assert tree["duration"] >= tree["children"][0]["duration"] >= 0


def test_tree_nests_children_in_start_order_with_offsets(database: Database) -> None:
    store = SpanStore(database)
    store.write(
        [
            record("b000000000000002", "a000000000000001", 100.5, 101.0),
            record("a000000000000001", None, 100.0, 102.0, attributes={"k": "v"}),
            record("c000000000000003", "a000000000000001", 100.25, 100.5),
        ]
    )

    [root] = store.tree(TRACE)
    assert root["spanId"] == "a000000000000001"
    assert root["attributes"] == {"k": "v"}
    assert (root["startTime"], root["endTime"], root["duration"]) == (100.0, 102.0, 2.0)
    assert [(c["spanId"], c["offset"]) for c in root["children"]] == [
        ("c000000000000003", 0.25),
        ("b000000000000002", 0.5),
    ]


def test_span_with_a_parent_outside_the_store_is_a_root(database: Database) -> None:
    store = SpanStore(database)
    store.write([record("d000000000000004", "00f067aa0ba902b7", 5.0, 6.0)])

    [root] = store.tree(TRACE)
    assert root["parentSpanId"] == "00f067aa0ba902b7"
    assert root["children"] == []


def test_writing_the_same_span_twice_keeps_one_row(database: Database) -> None:
    store = SpanStore(database)
    span = record("e000000000000005", None, 1.0, 2.0)
    store.write([span])
    store.write([span, record("f000000000000006", "e000000000000005", 1.5, 1.75)])

    assert [s.span_id for s in store.trace(TRACE)] == ["e000000000000005", "f000000000000006"]


def test_unknown_trace_reads_as_empty(database: Database) -> None:
    store = SpanStore(database)
    assert store.trace("ffffffffffffffffffffffffffffffff") == []
    assert store.tree("ffffffffffffffffffffffffffffffff") == []
