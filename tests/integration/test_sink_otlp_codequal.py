"""One CodeQual exports its logs (and spans) over OTLP/HTTP to another CodeQual's ingest.

The receiver is ``codequal serve``'s app under uvicorn on loopback, authenticating with an
``ingest:write`` token the emitter reads from ``OTEL_EXPORTER_OTLP_HEADERS``. The emitter logs
while the receiver is not running yet; once it starts, every entry lands in its log store, in
order, with the fields it was logged with.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from codequal.config import load_settings
from codequal.runtime.wiring import setup_telemetry
from codequal.telemetry.logging import ErrorInfo
from codequal.telemetry.setup import Telemetry
from codequal.telemetry.sinks.otlp import ENTRY_ID, OtlpLogSink
from codequal.telemetry.stores.logs import LogQuery, LogStore
from codequal.telemetry.stores.spans import SpanStore

from ..conftest import TEST_JWT_SECRET
from ..helpers import eventually
from .test_ingest_server import INGEST, Server, ingest_app, ingest_settings
from .test_sink_delivery import free_port

SERVICE = "emitter-svc"
TRACE = "5b8efff798038103d269b633813fc60c"


@contextlib.contextmanager
def serve_on(port: int, data_dir: Path, database_url: str) -> Iterator[Server]:
    """The receiving CodeQual on a port chosen before it starts (the emitter already uses it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    settings = ingest_settings(data_dir, database_url, port)
    app = ingest_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert app.state.codequal.wait_ready(30), "the receiver did not become ready"
        yield Server(f"http://127.0.0.1:{port}", port, app, settings)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def emitter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Telemetry, int]]:
    port = free_port()
    token = INGEST["Authorization"].removeprefix("Bearer ")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{token}")
    settings = load_settings(
        data_dir=tmp_path / "emitter",
        jwt_secret=TEST_JWT_SECRET,
        otlp_endpoint=f"http://127.0.0.1:{port}",
        environment="staging",
        log_format="json",
    )
    telemetry = setup_telemetry(settings, None, bridge_stdlib=False)
    try:
        yield telemetry, port
    finally:
        telemetry.shutdown(5.0)


def stored(receiver: Server) -> list[dict[str, object]]:
    """The emitter's entries in the receiver's store, in the order they were stored."""
    rows = LogStore(receiver.state.db).query(LogQuery(service=SERVICE, limit=10_000))
    return rows[::-1]


def test_logs_emitted_while_the_receiving_codequal_is_down_all_land_in_its_store_in_order(
    emitter: tuple[Telemetry, int], tmp_path: Path, database_url: str
) -> None:
    telemetry, port = emitter
    log = telemetry.logger(SERVICE)
    for i in range(2_000):
        log.info(f"n{i}", seq=i)
    log.error(
        "agent failed",
        trace_id=TRACE,
        user_id="u-7",
        error=ErrorInfo("TimeoutError", "took too long", "Traceback ..."),
    )
    assert telemetry.logs.flush(10.0)
    sink = next(s for s in telemetry.logs.sinks if isinstance(s, OtlpLogSink))
    assert sink.spool.depth() == 2_001
    with serve_on(port, tmp_path / "receiver", database_url) as receiver:
        eventually(lambda: len(stored(receiver)) >= 2_001, 60)
        eventually(lambda: sink.spool.depth() == 0)
        rows = stored(receiver)
        assert [r["action"] for r in rows] == [f"n{i}" for i in range(2_000)] + ["agent failed"]
        uids = [r["metadata"][ENTRY_ID] for r in rows]  # type: ignore[index]
        assert len(set(uids)) == len(uids)
        assert rows[5]["metadata"]["seq"] == 5  # type: ignore[index]
        failed = rows[-1]
        assert (failed["level"], failed["trace_id"], failed["user_id"]) == ("error", TRACE, "u-7")
        assert failed["error"] == {
            "type": "TimeoutError",
            "message": "took too long",
            "stack": "Traceback ...",
        }
        assert failed["metadata"]["resource"]["deployment.environment"] == "staging"  # type: ignore[index]

        # Spans take the same endpoint and headers (through the OpenTelemetry SDK exporter).
        with telemetry.tracing.span("exported span") as span:
            trace_id = f"{span.get_span_context().trace_id:032x}"
        assert telemetry.tracing.flush(10.0)
        spans = SpanStore(receiver.state.db).trace(trace_id)
        assert [s.name for s in spans] == ["exported span"]
