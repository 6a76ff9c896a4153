"""Loki push ingest: JSON (gzip) and snappy protobuf in, the same log store and API out."""

from __future__ import annotations

import base64
import gzip
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cramjam
import httpx
import logging_loki
import orjson
import pytest

from codequal.ingest.logproto import PushRequest
from codequal.security.key_store import KeyStore
from codequal.telemetry.stores.logs import LogQuery, LogStore

from .test_ingest_server import INGEST, READ, Server, run_server

PUSH = "/loki/api/v1/push"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_700_000_000_123_456_789  # nanoseconds


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    with run_server(tmp_path / "srv", database_url) as running:
        yield running


def push(server: Server, body: dict[str, Any], *, compress: bool = True) -> httpx.Response:
    raw = orjson.dumps(body)
    headers = {**INGEST, "Content-Type": "application/json"}
    if compress:
        raw, headers["Content-Encoding"] = gzip.compress(raw), "gzip"
    return httpx.post(f"{server.base}{PUSH}", content=raw, headers=headers, timeout=30)


def logs(server: Server, **filters: Any) -> list[dict[str, Any]]:
    return LogStore(server.state.db).query(LogQuery(**filters, limit=1000))


def test_gzip_json_push_lands_in_the_log_store_and_the_monitoring_api(server: Server) -> None:
    body = {
        "streams": [
            {
                "stream": {"service": "cart", "level": "warn", "env": "prod"},
                "values": [[str(T0), "cart is stale"], [str(T0 + 1000), "second line"]],
            },
            {
                "stream": {"job": "payments"},
                "values": [
                    [str(T0), '{"level": "error", "msg": "declined"}'],
                    [str(T0), "ts=1 level=debug msg=retry"],
                    [str(T0), "no level here", {"trace_id": TRACE, "user": "u1"}],
                ],
            },
        ]
    }
    answer = push(server, body)
    assert answer.status_code == 204, answer.text
    cart = logs(server, service="cart")
    assert [(r["level"], r["action"]) for r in cart] == [
        ("warn", "second line"),
        ("warn", "cart is stale"),
    ]
    assert cart[1]["ts"] == pytest.approx(T0 / 1e9)
    assert cart[1]["metadata"] == {"labels": {"service": "cart", "level": "warn", "env": "prod"}}
    payments = {r["action"]: r for r in logs(server, service="payments")}
    assert payments['{"level": "error", "msg": "declined"}']["level"] == "error"
    assert payments["ts=1 level=debug msg=retry"]["level"] == "debug"
    traced = payments["no level here"]
    assert (traced["level"], traced["trace_id"]) == ("info", TRACE)
    assert traced["metadata"]["structured_metadata"] == {"trace_id": TRACE, "user": "u1"}
    api = httpx.get(
        f"{server.base}/api/monitoring/logs", params={"traceId": TRACE}, headers=READ
    ).json()
    assert [item["action"] for item in api["items"]] == ["no level here"]


def test_snappy_protobuf_push_is_accepted(server: Server) -> None:
    request = PushRequest()
    stream = request.streams.add(labels='{service_name="edge", detected_level="error"}')
    entry = stream.entries.add(line="upstream timed out")
    entry.timestamp.seconds, entry.timestamp.nanos = 1_700_000_000, 500_000_000
    entry.structuredMetadata.add(name="traceID", value=TRACE)
    answer = httpx.post(
        f"{server.base}{PUSH}",
        content=bytes(cramjam.snappy.compress_raw(request.SerializeToString())),
        headers={**INGEST, "Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == 204, answer.text
    (row,) = logs(server, service="edge")
    assert (row["level"], row["trace_id"], row["ts"]) == ("error", TRACE, 1_700_000_000.5)


def test_a_long_line_is_kept_whole_in_metadata(server: Server) -> None:
    line = "x" * 3000
    assert push(
        server, {"streams": [{"stream": {"job": "big"}, "values": [["1", line]]}]}
    ).is_success
    (row,) = logs(server, service="big")
    assert len(row["action"]) == 500
    assert row["metadata"]["line"] == line


@pytest.mark.parametrize(
    ("labels", "limit"),
    [
        ({f"l{i}": "v" for i in range(16)}, "max_label_names_per_series"),
        ({"job": "a", "n" * 1025: "v"}, "max_label_name_length"),
        ({"job": "v" * 2049}, "max_label_value_length"),
    ],
)
def test_label_limits_refuse_the_whole_push_with_a_400_naming_the_limit(
    server: Server, labels: dict[str, str], limit: str
) -> None:
    body = {
        "streams": [
            {"stream": {"job": "fine"}, "values": [["1", "would be stored alone"]]},
            {"stream": labels, "values": [["1", "too many labels"]]},
        ]
    }
    answer = push(server, body)
    assert answer.status_code == 400
    assert limit in answer.json()["detail"] and "stream 1" in answer.json()["detail"]
    assert logs(server, service="fine") == []  # nothing of a refused push is stored


def test_a_label_set_exactly_at_the_limits_is_accepted(server: Server) -> None:
    labels = {f"l{i}": "v" for i in range(14)} | {"job": "v" * 2048}
    assert push(server, {"streams": [{"stream": labels, "values": [["1", "ok"]]}]}).is_success
    assert len(logs(server, service="v" * 100)) == 1  # the service column keeps 100 characters


# -- the clients operators run: python-logging-loki sends Basic auth and a `severity` label --
def loki_logger(server: Server, name: str, auth: tuple[str, str]) -> logging.Logger:
    handler = logging_loki.LokiHandler(
        url=f"{server.base}{PUSH}", tags={"service": "billing"}, auth=auth, version="1"
    )
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_python_logging_loki_with_basic_auth_and_its_severity_label(server: Server) -> None:
    record, key = KeyStore(server.state.db).create("billing-logs", ["ingest:write"])
    logger = loki_logger(server, "billing.basic", (record.key_id, key))
    logger.warning("invoice %s is overdue", "i-7")
    logger.error("charge failed")
    tenant = loki_logger(server, "billing.tenant", ("tenant-1", key))  # user: a tenant name
    tenant.debug("retrying")
    rows = logs(server, service="billing")
    assert sorted((r["level"], r["action"]) for r in rows) == [
        ("debug", "retrying"),
        ("error", "charge failed"),
        ("warn", "invoice i-7 is overdue"),
    ]
    assert rows[0]["metadata"]["labels"]["logger"].startswith("billing.")


@pytest.mark.parametrize(
    "auth",
    [("0123456789abcdef", "cq_0123456789abcdef_wrong"), ("user", "not-a-key"), ("user", "")],
)
def test_wrong_basic_credentials_are_401(server: Server, auth: tuple[str, str]) -> None:
    logger = loki_logger(server, f"billing.wrong.{auth[0]}", auth)
    handler = logger.handlers[0]
    failures: list[BaseException] = []
    handler.handleError = lambda _record: failures.append(sys.exc_info()[1])  # type: ignore[method-assign,assignment]
    logger.error("refused")
    assert len(failures) == 1 and "401" in str(failures[0])
    assert logs(server, service="billing") == []


def test_a_key_id_user_must_match_the_password_key(server: Server) -> None:
    _, key = KeyStore(server.state.db).create("one", ["ingest:write"])
    other, _ = KeyStore(server.state.db).create("two", ["ingest:write"])
    raw = base64.b64encode(f"{other.key_id}:{key}".encode()).decode()
    answer = httpx.post(
        f"{server.base}{PUSH}",
        content=orjson.dumps({"streams": [{"stream": {"job": "x"}, "values": [["1", "l"]]}]}),
        headers={"Authorization": f"Basic {raw}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 401
    assert "key id" in answer.json()["detail"]


def test_structured_metadata_level_wins_over_the_stream_label(server: Server) -> None:
    body = {
        "streams": [
            {
                "stream": {"service": "cart", "severity": "info"},
                "values": [
                    [str(T0), "from metadata", {"detected_level": "error"}],
                    [str(T0 + 1), "from the label"],
                ],
            }
        ]
    }
    assert push(server, body).status_code == 204
    levels = {r["action"]: r["level"] for r in logs(server, service="cart")}
    assert levels == {"from metadata": "error", "from the label": "info"}


def test_monitoring_logs_q_finds_text_in_fields_not_only_the_action(server: Server) -> None:
    body = {
        "streams": [
            {
                "stream": {"service": "deepwiki", "level": "error"},
                "values": [[str(T0), "clone failed", {"exception": "CloneError: repo gone"}]],
            }
        ]
    }
    assert push(server, body).status_code == 204
    found = httpx.get(
        f"{server.base}/api/monitoring/logs", params={"q": "cloneerror"}, headers=READ
    ).json()
    assert [item["action"] for item in found["items"]] == ["clone failed"]
