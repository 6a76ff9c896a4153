"""Loki push decoding: label selectors, limits, timestamps, levels, snappy protobuf."""

from __future__ import annotations

from typing import Any

import cramjam
import orjson
import pytest

from codequal.ingest import IngestError
from codequal.ingest.limits import LOKI
from codequal.ingest.logproto import PushRequest
from codequal.ingest.loki import decode_push, parse_selector


def push(*streams: dict[str, Any]) -> bytes:
    return orjson.dumps({"streams": list(streams)})


def decoded(*streams: dict[str, Any]) -> list[Any]:
    return decode_push(push(*streams), "application/json")


def refused(status: int, body: bytes, content_type: str = "application/json") -> str:
    with pytest.raises(IngestError) as caught:
        decode_push(body, content_type)
    assert caught.value.status == status, caught.value.message
    return caught.value.message


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ('{job="api"}', {"job": "api"}),
        ('{ job = "api" , level="warn",}', {"job": "api", "level": "warn"}),
        (r'{msg="say \"hi\"\n", path="C:\\x"}', {"msg": 'say "hi"\n', "path": "C:\\x"}),
        ("{}", {}),
    ],
)
def test_label_selectors_parse_with_escapes(text: str, labels: dict[str, str]) -> None:
    assert parse_selector(text, 0) == labels


@pytest.mark.parametrize(
    ("text", "words"),
    [('job="api"', "must look like"), ('{job=api}', "cannot be parsed"),
     ('{job="a", job="b"}', "repeats the label 'job'"), ('{1job="a"}', "cannot be parsed")],
)  # fmt: skip
def test_bad_selectors_are_400(text: str, words: str) -> None:
    with pytest.raises(IngestError) as caught:
        parse_selector(text, 2)
    assert caught.value.status == 400 and words in caught.value.message
    assert "stream 2" in caught.value.message


def test_service_and_level_come_from_labels_in_order_of_preference() -> None:
    one = {"job": "j", "service_name": "sn", "detected_level": "ERROR"}
    two = {"service": "s", "service_name": "sn", "level": "warning"}
    entries = decoded(
        {"stream": one, "values": [["1", "a"]]},
        {"stream": two, "values": [["1", "b"]]},
        {"stream": {"app": "x"}, "values": [["1", "c"]]},
    )
    assert [(e.service, e.level) for e in entries] == [
        ("sn", "error"), ("s", "warn"), ("unknown", "info"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "level"),
    [('{"level":"fatal","msg":"x"}', "critical"), ('{"severity":"DEBUG"}', "debug"),
     ('{"msg":"no level"}', "info"), ("{not json level=error", "error"),
     ('time=1 lvl=warn msg="x"', "warn"), ('level="err" x', "error"), ("plain text", "info"),
     ("deviceLevel=error", "info")],
)  # fmt: skip
def test_without_a_level_label_the_line_decides(line: str, level: str) -> None:
    (entry,) = decoded({"stream": {"job": "j"}, "values": [["1", line]]})
    assert entry.level == level


def test_nanosecond_timestamps_and_structured_metadata() -> None:
    trace = "4BF92F3577B34DA6A3CE929D0E0E4736"
    (plain, traced) = decoded(
        {"stream": {"job": "j"}, "values": [["1700000000123456789", "a"],
                                             ["0", "b", {"traceId": trace, "n": 1}]]},
    )  # fmt: skip
    assert plain.timestamp == pytest.approx(1_700_000_000.123456789)
    assert plain.metadata == {"labels": {"job": "j"}}
    assert traced.trace_id == trace.lower()
    assert traced.metadata == {"labels": {"job": "j"},
                               "structured_metadata": {"traceId": trace, "n": "1"}}  # fmt: skip
    assert len(plain.trace_id) == 32 and plain.trace_id != traced.trace_id


@pytest.mark.parametrize(
    ("value", "words"),
    [(["1.5", "x"], "Unix epoch nanoseconds"), ([17, "x"], "Unix epoch nanoseconds"),
     (["-1", "x"], "Unix epoch nanoseconds"), (["1"], "must be"), (["1", 5], "must be"),
     ("1 x", "must be"), (["1", "x", "meta"], "structured metadata must be a JSON object")],
)  # fmt: skip
def test_bad_values_are_400_naming_stream_and_position(value: Any, words: str) -> None:
    body = push(
        {"stream": {"job": "ok"}, "values": []}, {"stream": {"job": "j"}, "values": [value]}
    )
    message = refused(400, body)
    assert words in message and "stream 1 value 0" in message


@pytest.mark.parametrize(
    ("body", "words"),
    [(b'{"streams": {}}', '"streams"'), (b"[]", '"streams"'), (b"{oops", "not valid JSON"),
     (push({"stream": {}, "values": [["1", "x"]]}), "no labels"),
     (push({"stream": {"job": 1}, "values": []}), "label names to strings"),
     (push({"stream": {"job": "j"}, "values": {}}), "'values' must be a list"),
     (push({"stream": {"bad-name": "j"}, "values": []}), "invalid label name"),
     (push({"stream": {"job": "j"}, "values": [["1", "x" * (256 * 1024 + 1)]]}),
      "max_line_size")],
)  # fmt: skip
def test_malformed_pushes_are_400(body: bytes, words: str) -> None:
    assert words in refused(400, body)


def test_an_empty_push_stores_nothing() -> None:
    assert decode_push(b'{"streams": []}', "application/json") == []


def test_nul_characters_are_replaced_so_postgres_accepts_the_line() -> None:
    (entry,) = decoded({"stream": {"job": "j\x00"}, "values": [["1", "a\x00b"]]})
    assert (entry.action, entry.service) == ("a\ufffdb", "j\ufffd")


def snappy(message: Any) -> bytes:
    return bytes(cramjam.snappy.compress_raw(message.SerializeToString()))


def test_snappy_protobuf_decodes_like_json() -> None:
    request = PushRequest()
    entry = request.streams.add(labels='{job="j", level="warn"}').entries.add(line="hello")
    entry.timestamp.seconds, entry.timestamp.nanos = 1_700_000_000, 250_000_000
    entry.structuredMetadata.add(name="user", value="u1")
    (decoded_entry,) = decode_push(snappy(request), "application/x-protobuf")
    assert (decoded_entry.level, decoded_entry.timestamp) == ("warn", 1_700_000_000.25)
    assert decoded_entry.metadata == {
        "labels": {"job": "j", "level": "warn"},
        "structured_metadata": {"user": "u1"},
    }


def test_protobuf_label_limits_apply_too() -> None:
    request = PushRequest()
    labels = ", ".join(f'l{i}="v"' for i in range(16))
    request.streams.add(labels=f"{{{labels}}}").entries.add(line="x")
    assert "max_label_names_per_series" in refused(400, snappy(request), "application/x-protobuf")


def test_a_snappy_block_claiming_a_huge_size_is_413_before_decompressing() -> None:
    # The block starts with its decompressed length as a varint: claim LOKI's limit + 1.
    size, header = LOKI.decompressed + 1, bytearray()
    while size >= 0x80:
        header.append((size & 0x7F) | 0x80)
        size >>= 7
    header.append(size)
    assert "32 MiB" in refused(413, bytes(header) + b"\x00" * 10, "application/x-protobuf")


@pytest.mark.parametrize(
    ("body", "words"),
    [(b"not snappy at all \xff\xff", "snappy"),
     (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff not protobuf")), "PushRequest")],
)  # fmt: skip
def test_bad_protobuf_bodies_are_400(body: bytes, words: str) -> None:
    assert words in refused(400, body, "application/x-protobuf")


def test_other_content_types_are_415() -> None:
    refused(415, b"{}", "text/plain")
