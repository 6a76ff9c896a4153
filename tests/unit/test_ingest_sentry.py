"""Sentry's envelope framing and event payloads, decoded without a server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from codequal.ingest import IngestError
from codequal.ingest.sentry import decode_envelope, public_key, split_envelope
from codequal.ingest.sentry_event import error_event, transaction_spans
from codequal.telemetry.errors import FILTERED, fingerprint

NOW = 1_800_000_000.0
TRACE = "771a43a4192642f0b136d5159a501700"


def refused(status: int, fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(IngestError) as caught:
        fn(*args, **kwargs)
    assert caught.value.status == status, caught.value.message
    return caught.value.message


# -- framing -----------------------------------------------------------------------------------
def test_items_may_be_newline_terminated_or_have_an_explicit_length() -> None:
    binary = b"line one\nline two\n\x00\xff"
    body = (
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'
        b'{"type":"event"}\n{"message":"a"}\n'
        + b'{"type":"attachment","length":%d}\n' % len(binary)
        + binary
        + b'\n{"type":"session"}\n{"sid":"x"}'  # no newline at the very end
    )
    header, items = split_envelope(body)
    assert header["event_id"] == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert [(h["type"], p) for h, p in items] == [
        ("event", b'{"message":"a"}'),
        ("attachment", binary),
        ("session", b'{"sid":"x"}'),
    ]


def test_an_envelope_with_only_a_header_has_no_items() -> None:
    assert split_envelope(b"{}\n") == ({}, [])
    assert split_envelope(b"{}") == ({}, [])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b"not json\n", "envelope header is not valid JSON"),
        (b"[1]\n", "must be a JSON object"),
        (b'{}\n{"type":"event","length":50}\n{"short"}', "truncated"),
        (b'{}\n{"type":"event","length":-1}\n{}', "whole number"),
        (b'{}\n{"type":"event","length":"9"}\n{}', "whole number"),
        (b"{}\n{broken\n{}", "header of item 0"),
    ],
)
def test_bad_framing_is_a_400_that_says_where(body: bytes, words: str) -> None:
    assert words in refused(400, split_envelope, body)


def test_decoding_counts_each_item_type_and_keeps_the_event_id() -> None:
    body = b"\n".join(
        [
            b'{"event_id":"9ec79c33-ec99-42ab-8353-589fcb2e04dc"}',
            b'{"type":"event"}',
            b'{"exception":{"values":[{"type":"KeyError","value":"x"}]}}',
            b'{"type":"client_report"}',
            b"{}",
            b'{"type":"brand_new"}',
            b"{}",
        ]
    )
    batch = decode_envelope(body, project_id=3, now=NOW)
    assert batch.event_id == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert batch.events[0].event_id == batch.event_id
    assert dict(batch.counts) == {
        ("event", "accepted"): 1,
        ("client_report", "ignored"): 1,
        ("other", "ignored"): 1,
    }


def test_an_event_item_over_one_mib_is_413() -> None:
    payload = orjson.dumps({"message": "x" * (1024 * 1024)})
    body = b'{}\n{"type":"event"}\n' + payload
    assert "1 MiB" in refused(413, decode_envelope, body, project_id=1, now=NOW)


def test_a_malformed_event_payload_refuses_the_envelope() -> None:
    refused(400, decode_envelope, b'{}\n{"type":"event"}\n{not json', project_id=1, now=NOW)


@pytest.mark.parametrize(
    ("header", "query", "key"),
    [
        ("Sentry sentry_key=abc, sentry_version=7", None, "abc"),
        ("Sentry sentry_version=7,sentry_client=x/1,sentry_key=abc", None, "abc"),
        (None, "abc", "abc"),
        ("Bearer nope", "abc", "abc"),
    ],
)
def test_the_public_key_comes_from_the_header_or_the_query(
    header: str | None, query: str | None, key: str
) -> None:
    assert public_key(header, query) == key


def test_no_public_key_is_401() -> None:
    assert "sentry_key" in refused(401, public_key, "Sentry sentry_version=7", None)


# -- events ------------------------------------------------------------------------------------
def sdk_event(**extra: Any) -> dict[str, Any]:
    frames = [
        {"module": "app.views", "function": "checkout", "abs_path": "/srv/app/views.py",
         "lineno": 10, "context_line": "    charge(order)", "in_app": True,
         "vars": {"password": "hunter2"}},
        {"module": "stripe.api", "function": "request", "filename": "stripe/api.py",
         "lineno": 99, "context_line": "raise CardError(msg)", "in_app": False},
    ]  # fmt: skip
    return {
        "event_id": "0123456789abcdef0123456789abcdef",
        "timestamp": "2027-01-15T08:00:00.250Z",
        "level": "fatal",
        "environment": "prod",
        "release": "shop@1.2.3",
        "exception": {
            "values": [
                {"type": "TimeoutError", "value": "first"},
                {
                    "type": "CardError",
                    "module": "stripe.error",
                    "value": "card 4242 declined",
                    "stacktrace": {"frames": frames},
                },
            ]
        },
        "contexts": {"trace": {"trace_id": TRACE, "span_id": "b" * 16}},
        "user": {"id": 42, "email": "a@example.com"},
        "tags": [["service", "shop"], ["region", "eu"]],
        "request": {"headers": {"Authorization": "Bearer abcdefgh12345678", "Accept": "*/*"}},
        "extra": {"note": "token=abc123secret", "db_password": "x"},
        **extra,
    }


def test_an_sdk_event_becomes_a_scrubbed_fingerprinted_error_event() -> None:
    event = error_event(sdk_event(), project_id=5, now=NOW)
    assert event.event_id == "0123456789abcdef0123456789abcdef"
    assert (event.type, event.message, event.level) == (
        "stripe.error.CardError",
        "card 4242 declined",
        "critical",
    )
    assert (event.service, event.environment, event.release) == ("shop", "prod", "shop@1.2.3")
    assert (event.trace_id, event.user_id) == (TRACE, "42")
    assert [f["in_app"] for f in event.frames] == [True, False]
    assert all("vars" not in f for f in event.frames)  # locals never reach the store
    assert event.culprit == "app.views in checkout"
    assert event.context["request"]["headers"]["Authorization"] == FILTERED
    assert event.context["extra"] == {"note": f"token={FILTERED}", "db_password": FILTERED}
    assert event.context["tags"] == {"service": "shop", "region": "eu"}
    assert event.context["sentry"]["project_id"] == 5
    assert "TimeoutError: first" in event.stack and "CardError: card 4242" in event.stack
    # The same grouping as an in-process capture of these frames.
    assert event.fingerprint == fingerprint(event.type, list(event.frames), event.message)


def test_the_iso_timestamp_is_utc_seconds() -> None:
    event = error_event(sdk_event(), project_id=1, now=NOW)
    assert event.timestamp == datetime(2027, 1, 15, 8, 0, 0, 250_000, tzinfo=UTC).timestamp()
    naive = error_event({"timestamp": "2027-01-15T08:00:00"}, project_id=1, now=NOW)
    assert naive.timestamp == datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    assert error_event({"timestamp": 1.5e9}, project_id=1, now=NOW).timestamp == 1.5e9


def test_an_explicit_fingerprint_groups_by_it() -> None:
    one = error_event(sdk_event(fingerprint=["checkout"]), project_id=1, now=NOW)
    two = error_event(sdk_event(fingerprint=["checkout"], exception=None), project_id=1, now=NOW)
    assert one.fingerprint == two.fingerprint


@pytest.mark.parametrize(
    ("payload", "message", "level"),
    [
        ({"message": "disk almost full", "level": "warning"}, "disk almost full", "warn"),
        ({"logentry": {"formatted": "user 7 left", "message": "user %s left"}}, "user 7 left",
         "info"),
        ({"message": {"message": "raw"}}, "raw", "info"),
        ({}, "(no message)", "info"),
    ],
)  # fmt: skip
def test_message_events_have_type_message(
    payload: dict[str, Any], message: str, level: str
) -> None:
    event = error_event(payload, project_id=9, now=NOW)
    assert (event.type, event.message, event.level) == ("message", message, level)
    assert event.service == "sentry-project-9"
    assert event.timestamp == NOW  # no timestamp: the time it arrived


def test_hostile_values_are_made_storable() -> None:
    event = error_event(
        {"message": "nul\x00here", "extra": {"big": 2**70, "k\x00": "v"}, "timestamp": "never",
         "event_id": "not-an-id", "exception": {"values": "oops"}},
        project_id=1, now=NOW,
    )  # fmt: skip
    assert event.message == "nul\ufffdhere"
    assert event.context["extra"] == {"big": str(2**70), "k\ufffd": "v"}
    assert event.timestamp == NOW and len(event.event_id) == 32


# -- transactions -------------------------------------------------------------------------------
def test_a_transaction_becomes_a_root_span_and_its_children() -> None:
    payload = {
        "type": "transaction",
        "transaction": "GET /cart",
        "start_timestamp": 100.0,
        "timestamp": 100.5,
        "contexts": {"trace": {"trace_id": TRACE, "span_id": "a" * 16, "op": "http.server",
                               "status": "internal_error"}},
        "spans": [
            {"span_id": "b" * 16, "parent_span_id": "a" * 16, "op": "db", "description": "SELECT",
             "start_timestamp": 100.1, "timestamp": 100.2, "status": "ok", "data": {"rows": 3}},
            {"span_id": "nope", "op": "db"},
        ],
        "tags": {"service": "cart"},
    }  # fmt: skip
    spans, rejected = transaction_spans(payload, project_id=1, now=NOW)
    assert rejected == 1
    root, child = spans
    assert (root.name, root.kind, root.status, root.status_message) == (
        "GET /cart", "SERVER", "ERROR", "internal_error",
    )  # fmt: skip
    assert (root.service, root.duration) == ("cart", pytest.approx(0.5))
    assert (child.name, child.kind, child.status, child.parent_span_id) == (
        "SELECT", "CLIENT", "OK", "a" * 16,
    )  # fmt: skip
    assert child.attributes == {"sentry.op": "db", "rows": 3}


def test_a_transaction_without_a_trace_id_is_rejected_whole() -> None:
    spans, rejected = transaction_spans({"spans": [{}, {}]}, project_id=1, now=NOW)
    assert (spans, rejected) == ([], 3)


# -- streamed spans (sentry-sdk 3) ---------------------------------------------------------------
def _attrs(**values: Any) -> dict[str, Any]:
    kinds = {str: "string", int: "integer", float: "double", bool: "boolean", list: "array"}
    return {k.replace("__", "."): {"value": v, "type": kinds[type(v)]} for k, v in values.items()}


# The container sentry-sdk 3.0 sent for one root span and one child (its attributes trimmed).
SPAN_CONTAINER = {
    "version": 2,
    "items": [
        {"trace_id": TRACE, "span_id": "b" * 16, "parent_span_id": "a" * 16,
         "name": "SELECT cart", "status": "ok", "is_segment": False,
         "start_timestamp": 100.1, "end_timestamp": 100.2,
         "attributes": _attrs(sentry__op="db", db__rows=3)},
        {"trace_id": TRACE, "span_id": "a" * 16, "name": "GET /cart", "status": "error",
         "is_segment": True, "start_timestamp": 100.0, "end_timestamp": 100.5,
         "attributes": _attrs(sentry__op="http.server", service__name="cart",
                              process__command_args=["app.py", "--password=hunter2-x"])},
        {"trace_id": "not-a-trace", "span_id": "c" * 16, "name": "lost"},
    ],
}  # fmt: skip


def test_a_streamed_span_container_becomes_spans_with_plain_attributes() -> None:
    body = b'{}\n{"type":"span","content_type":"application/vnd.sentry.items.span.v2+json"}\n'
    batch = decode_envelope(body + orjson.dumps(SPAN_CONTAINER), project_id=4, now=NOW)
    child, root = batch.spans
    assert (root.name, root.kind, root.status, root.parent_span_id) == (
        "GET /cart", "SERVER", "ERROR", None,
    )  # fmt: skip
    assert (child.name, child.kind, child.status, child.parent_span_id) == (
        "SELECT cart", "CLIENT", "OK", "a" * 16,
    )  # fmt: skip
    assert (root.service, child.service) == ("cart", "sentry-project-4")
    assert root.duration == pytest.approx(0.5)
    assert child.attributes == {"sentry.op": "db", "db.rows": 3}
    assert "hunter2" not in orjson.dumps(root.attributes).decode()
    assert dict(batch.counts) == {("span", "accepted"): 2, ("span", "rejected"): 1}


def test_a_span_container_over_ten_mib_is_413() -> None:
    payload = orjson.dumps({"version": 2, "items": [{"name": "x" * (10 * 1024 * 1024)}]})
    body = b'{}\n{"type":"span"}\n' + payload
    assert "10 MiB" in refused(413, decode_envelope, body, project_id=1, now=NOW)


def test_a_dsn_in_the_sdks_argv_extra_is_not_stored() -> None:
    key = "cq_0123456789abcdef_" + "k" * 32
    payload = {
        "message": "boom",
        "extra": {"sys.argv": ["app.py", f"--dsn=http://{key}@127.0.0.1:8080/3"]},
    }
    event = error_event(payload, project_id=3, now=NOW)
    assert key not in orjson.dumps(event.context).decode()
    assert event.context["extra"]["sys.argv"][1] == f"--dsn=http://{FILTERED}@127.0.0.1:8080/3"
