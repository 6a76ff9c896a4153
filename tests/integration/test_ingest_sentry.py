"""Sentry ingest with the real sentry-sdk, sending to a DSN on loopback made by the CLI."""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sentry_sdk
from click.testing import CliRunner
from sentry_sdk.utils import event_from_exception

from codequal.cli.keys_cmd import keys
from codequal.ingest import ITEMS
from codequal.telemetry.errors import FILTERED, build_event
from codequal.telemetry.stores.errors import ErrorStore
from codequal.telemetry.stores.spans import SpanStore

from .test_ingest_server import READ, Server, run_server


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    with run_server(tmp_path / "srv", database_url) as running:
        yield running


SECRET = "hunter2-" + "x" * 8


def fail_to_charge(order: int) -> None:
    raise ValueError(f"payment failed for order {order}: password={SECRET}")


def checkout(order: int) -> None:
    fail_to_charge(order)


def dsn_from_cli(server: Server, name: str = "shop") -> str:
    """``codequal keys create --sentry-dsn``: the DSN is the last line it prints."""
    env = {
        "CODEQUAL_DATABASE_URL": server.settings.resolved_database_url,
        "CODEQUAL_HOST": "127.0.0.1",
        "CODEQUAL_PORT": str(server.port),
    }
    data_dir = str(server.settings.data_dir)
    result = CliRunner().invoke(
        keys, ["create", "--name", name, "--sentry-dsn", "--data-dir", data_dir], env=env
    )
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


@contextmanager
def sentry_client(dsn: str, compression: str = "br", **options: Any) -> Iterator[sentry_sdk.Client]:
    """A real SDK client, made current only inside the block (no process-wide init)."""
    level = {"none": 0}.get(compression)
    experiments: dict[str, Any] = {"transport_compression_algo": compression}
    if level is not None:
        experiments = {"transport_compression_level": 0}
    client = sentry_sdk.Client(
        dsn=dsn, default_integrations=False, _experiments=experiments, **options
    )
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        yield client
    client.flush(timeout=10)
    client.close(timeout=10)


def run_checkout(order: int, capture: Callable[[ValueError], object]) -> None:
    try:
        checkout(order)
    except ValueError as exc:
        capture(exc)


def capture_checkout_failure(order: int) -> None:
    sentry_sdk.set_extra("api_key", "sk-live-abcdef")
    sentry_sdk.set_tag("service", "shop")
    run_checkout(order, sentry_sdk.capture_exception)


def test_sdk_events_in_three_encodings_land_as_one_scrubbed_issue_with_their_count(
    server: Server,
) -> None:
    dsn = dsn_from_cli(server)
    assert dsn.startswith("http://cq_") and dsn.endswith(f"@127.0.0.1:{server.port}/1")
    for order, compression in enumerate(("br", "gzip", "none")):
        with sentry_client(dsn, compression) as client:
            capture_checkout_failure(order)
            client.flush(timeout=10)  # returns once the server has answered
    with httpx.Client(base_url=server.base, headers=READ, timeout=10) as api:
        (issue,) = api.get("/api/monitoring/errors").json()["items"]
        detail = api.get(f"/api/monitoring/errors/{issue['id']}").json()
    assert issue["count"] == 3
    assert issue["type"] == "ValueError"
    assert issue["culprit"].endswith("in fail_to_charge")
    event = detail["sampleEvent"]
    assert event["service"] == "shop"
    assert SECRET not in orjson.dumps(detail).decode()
    assert FILTERED in event["message"]
    assert event["context"]["extra"]["api_key"] == FILTERED
    assert [f["function"] for f in event["frames"] if f["in_app"]][-2:] == [
        "checkout",
        "fail_to_charge",
    ]


def test_an_sdk_event_groups_with_the_same_error_captured_in_process(server: Server) -> None:
    dsn = server.sentry_dsn(3)
    with sentry_client(dsn):
        capture_checkout_failure(11)
    captured: list[ValueError] = []
    run_checkout(12, captured.append)  # the same frames as the SDK's capture
    local = build_event(captured[0], service="shop", environment="test")
    ErrorStore(server.state.db).record([local])
    (issue,) = ErrorStore(server.state.db).list_issues()
    assert issue.fingerprint == local.fingerprint
    assert issue.count == 2


def cart_request() -> str:
    """A server span with one database child, sent as the installed SDK sends spans: a
    transaction event (sentry-sdk 2) or a streamed span container (sentry-sdk 3)."""
    if hasattr(sentry_sdk, "start_transaction"):
        with (
            sentry_sdk.start_transaction(op="http.server", name="GET /cart") as txn,
            sentry_sdk.start_span(op="db", name="SELECT cart"),
        ):
            return str(txn.trace_id)
    with (
        sentry_sdk.start_span(name="GET /cart", attributes={"sentry.op": "http.server"}) as root,
        sentry_sdk.start_span(name="SELECT cart", attributes={"sentry.op": "db"}),
    ):
        return str(root.trace_id)


def test_sdk_traces_become_spans_queryable_by_trace_id(server: Server) -> None:
    dsn = server.sentry_dsn(4)
    with sentry_client(dsn, traces_sample_rate=1.0):
        trace_id = cart_request()
    spans = SpanStore(server.state.db).trace(trace_id)
    assert {(s.name, s.kind) for s in spans} == {("GET /cart", "SERVER"), ("SELECT cart", "CLIENT")}
    root = next(s for s in spans if s.parent_span_id is None)
    assert all(s.parent_span_id == root.span_id for s in spans if s is not root)
    with httpx.Client(base_url=server.base, headers=READ, timeout=10) as api:
        tree = api.get(f"/api/monitoring/traces/{trace_id}").json()
    assert tree  # the monitoring API serves the ingested trace


def envelope(*items: tuple[dict[str, Any], bytes], header: dict[str, Any] | None = None) -> bytes:
    lines = [orjson.dumps(header or {})]
    for item_header, payload in items:
        lines += [orjson.dumps(item_header), payload]
    return b"\n".join(lines) + b"\n"


def count(kind: str, outcome: str) -> float:
    value: float = ITEMS.labels(format="sentry", type=kind, outcome=outcome)._value.get()
    return value


def test_other_item_types_are_accepted_and_counted_not_stored(server: Server) -> None:
    dsn_key = server.sentry_dsn(5).split("//")[1].split("@")[0]
    before = {k: count(k, "ignored") for k in ("session", "attachment", "other")}
    body = envelope(
        ({"type": "session"}, b'{"sid": "x"}'),
        ({"type": "attachment", "length": 5, "filename": "a.txt"}, b"hello"),
        ({"type": "some_future_type"}, b"{}"),
        header={"event_id": "9ec79c33ec9942ab8353589fcb2e04dc"},
    )
    answer = httpx.post(
        f"{server.base}/api/5/envelope/?sentry_key={dsn_key}", content=body, timeout=10
    )
    assert answer.status_code == 200
    assert answer.json() == {"id": "9ec79c33ec9942ab8353589fcb2e04dc"}
    assert {k: count(k, "ignored") - v for k, v in before.items()} == {
        "session": 1,
        "attachment": 1,
        "other": 1,
    }
    assert ErrorStore(server.state.db).list_issues() == []


@pytest.mark.parametrize(
    ("events", "padding"),
    [(1, 0), (20, 0), (1, 100_000)],
    ids=["one-small-event", "many-items", "large-once-decompressed"],
)
def test_small_and_large_envelopes_are_stored_alike(
    server: Server, events: int, padding: int
) -> None:
    # A small envelope is decoded on the event loop, a large one in a worker thread: a client
    # sees no difference, and every event is committed before the answer.
    dsn_key = server.sentry_dsn(7).split("//")[1].split("@")[0]
    payloads = [
        orjson.dumps(
            {"event_id": f"{n + 1:032x}", "message": "queue full", "extra": {"pad": "x" * padding}}
        )
        for n in range(events)
    ]
    body = gzip.compress(envelope(*(({"type": "event"}, p) for p in payloads)))
    headers = {"Content-Encoding": "gzip"}
    url = f"{server.base}/api/7/envelope/?sentry_key={dsn_key}"
    answer = httpx.post(url, content=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": f"{1:032x}"}
    (issue,) = ErrorStore(server.state.db).list_issues()
    assert issue.count == events
    assert len(ErrorStore(server.state.db).events(issue.id, limit=100)) == events


@pytest.mark.parametrize("packing", ["json", "gzip", "deflate", "base64-zlib"])
def test_legacy_store_endpoint_takes_an_event_in_every_packing(
    server: Server, packing: str
) -> None:
    dsn_key = server.sentry_dsn(6).split("//")[1].split("@")[0]
    with sentry_client(f"http://{dsn_key}@127.0.0.1:{server.port}/6"):
        try:
            checkout(1)
        except ValueError as exc:
            event, _ = event_from_exception(exc)  # the current client's options
    event["event_id"] = "0" * 31 + "1"
    raw = orjson.dumps(event, default=str)
    body, headers = {
        "json": (raw, {}),
        "gzip": (gzip.compress(raw), {"Content-Encoding": "gzip"}),
        "deflate": (zlib.compress(raw), {"Content-Encoding": "deflate"}),
        "base64-zlib": (base64.b64encode(zlib.compress(raw)), {}),
    }[packing]
    headers["X-Sentry-Auth"] = f"Sentry sentry_version=7, sentry_key={dsn_key}"
    answer = httpx.post(f"{server.base}/api/6/store/", content=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": "0" * 31 + "1"}
    (issue,) = ErrorStore(server.state.db).list_issues()
    assert issue.type == "ValueError" and SECRET not in issue.title


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--kind", "service"], "leave out --kind"),
        (["--scope", "monitoring:read"], "only the ingest:write scope"),
    ],
)
def test_sentry_dsn_refuses_a_key_that_could_do_more_than_send_events(
    tmp_path: Path, args: list[str], words: str
) -> None:
    result = CliRunner().invoke(
        keys,
        ["create", "--name", "x", "--sentry-dsn", "--data-dir", str(tmp_path), *args],
        env={"CODEQUAL_DATABASE_URL": None},
    )
    assert result.exit_code == 2
    assert words in result.output


def test_sentry_dsn_numbers_projects_and_honours_an_explicit_one(tmp_path: Path) -> None:
    def create(*extra: str) -> str:
        argv = ["create", "--sentry-dsn", "--data-dir", str(tmp_path), *extra]
        env = {"CODEQUAL_DATABASE_URL": None, "CODEQUAL_HOST": "0.0.0.0", "CODEQUAL_PORT": "9000"}
        result = CliRunner().invoke(keys, argv, env=env)
        assert result.exit_code == 0, result.output
        return result.output.strip().splitlines()[-1]

    assert create("--name", "a").endswith("@127.0.0.1:9000/1")  # bind-all is not an address
    assert create("--name", "b").endswith("@127.0.0.1:9000/2")
    assert create("--name", "c", "--project-id", "42").endswith("@127.0.0.1:9000/42")
    plain = CliRunner().invoke(keys, ["create", "--name", "d", "--data-dir", str(tmp_path)])
    assert plain.exit_code == 2 and "--scope" in plain.output


def test_guessed_dsn_keys_are_slowed_down_and_a_real_key_still_sends(server: Server) -> None:
    dsn_key = server.sentry_dsn(9).split("//")[1].split("@")[0]
    key_id = dsn_key.split("_")[1]
    body = envelope(({"type": "event"}, b'{"message": "hello"}'))
    limit = server.settings.auth_failures_per_minute
    statuses = []
    with httpx.Client(base_url=server.base, timeout=10) as client:
        for guess in range(limit + 5):
            url = f"/api/9/envelope/?sentry_key=cq_{key_id}_{guess:032x}"
            statuses.append(client.post(url, content=body).status_code)
        refused = client.post(f"/api/9/envelope/?sentry_key=cq_{key_id}_{0:032x}", content=body)
        real = client.post(f"/api/9/envelope/?sentry_key={dsn_key}", content=body)
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert real.status_code == 200, real.text
