"""The Loki push and Elasticsearch _bulk wire formats, built from spooled records."""

from __future__ import annotations

import orjson
import pytest

from codequal.exceptions import DeliveryError
from codequal.telemetry.logging import LogEntry
from codequal.telemetry.sinks.elasticsearch import bulk_body, bulk_outcome, index_name
from codequal.telemetry.sinks.loki import push_payload, validate_labels
from codequal.telemetry.sinks.spool import Record, entry_ns


def record(seq: int, level: str = "info", service: str = "api", ns: int = 0) -> Record:
    entry = {"timestamp": "2026-11-26T12:00:00.000Z", "level": level, "service": service}
    entry |= {"traceId": f"{seq:032x}", "action": f"a{seq}"}
    return Record(seq, f"id-{seq}", ns or 1_764_158_400_000_000_000 + seq, entry)


def test_entry_ns_is_an_integer_nanosecond_timestamp() -> None:
    entry = LogEntry(1_764_158_400.123456, "info", "api", "t", "a")
    assert entry_ns(entry) == 1_764_158_400_123_456_000


def test_loki_streams_have_only_static_bounded_labels_and_ids_in_the_line() -> None:
    records = [record(0), record(1, level="error"), record(2)]
    payload = push_payload(records, {"environment": "prod"})
    streams = {tuple(sorted(s["stream"].items())): s["values"] for s in payload["streams"]}
    info = (("environment", "prod"), ("level", "info"), ("service", "api"))
    assert set(streams) == {info, (("environment", "prod"), ("level", "error"), ("service", "api"))}
    values = streams[info]
    assert [v[0] for v in values] == [str(records[0].ns), str(records[2].ns)]
    line = orjson.loads(values[1][1])
    assert line["id"] == "id-2"
    assert line["traceId"] == f"{2:032x}"


def test_loki_values_are_in_timestamp_order_within_a_stream() -> None:
    payload = push_payload([record(0, ns=5), record(1, ns=3), record(2, ns=3)], {})
    values = payload["streams"][0]["values"]
    assert [v[0] for v in values] == ["3", "3", "5"]
    assert [orjson.loads(v[1])["id"] for v in values] == ["id-1", "id-2", "id-0"]


@pytest.mark.parametrize(
    "labels", [{"service": "x"}, {"trace-id": "x"}, {f"l{i}": "" for i in range(9)}]
)
def test_loki_static_labels_are_validated_at_start(labels: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="Loki sink"):
        validate_labels(labels)


def test_elasticsearch_bulk_is_ndjson_with_daily_index_and_stable_id() -> None:
    body = bulk_body([record(0), record(1)], "codequal-logs")
    assert body.endswith(b"\n")
    lines = [orjson.loads(line) for line in body.splitlines()]
    assert lines[0] == {"index": {"_index": "codequal-logs-2025.11.26", "_id": "id-0"}}
    assert lines[1]["@timestamp"] == "2026-11-26T12:00:00.000Z"
    assert lines[1]["action"] == "a0"
    assert lines[2]["index"]["_id"] == "id-1"


def test_index_name_is_the_utc_day() -> None:
    assert index_name("logs", 0) == "logs-1970.01.01"


def test_bulk_outcome_retries_429_and_5xx_items_and_drops_other_4xx() -> None:
    records = [record(i) for i in range(4)]
    answer = {
        "errors": True,
        "items": [
            {"index": {"status": 201}},
            {"index": {"status": 429}},
            {"index": {"status": 400, "error": {"type": "mapper_parsing_exception"}}},
            {"index": {"status": 503}},
        ],
    }
    result = bulk_outcome(records, answer)
    assert [r.id for r in result.retry] == ["id-1", "id-3"]
    assert result.failed == 1


def test_bulk_outcome_without_errors_is_all_delivered() -> None:
    assert bulk_outcome([record(0)], {"errors": False, "items": []}).retry == []


def test_bulk_outcome_with_a_wrong_item_count_retries_the_batch() -> None:
    with pytest.raises(DeliveryError):
        bulk_outcome([record(0)], {"errors": True, "items": []})
