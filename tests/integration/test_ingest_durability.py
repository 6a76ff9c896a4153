"""``kill -9`` of ``codequal serve`` in the middle of a stream of ingest requests: after a
restart on the same data directory, every acknowledged entry is queryable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import sqlalchemy as sa
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from codequal.storage.schema import error_events, spans

from ..conftest import TEST_JWT_SECRET, bearer
from ..helpers import wait_until_ready
from .test_serve_process import free_port

ACKS_BEFORE_KILL = 100  # per sender


@dataclass
class Sender:
    """Sends one entry per request; remembers the ids of those the server acknowledged."""

    name: str
    send: Callable[[httpx.Client, int], httpx.Response]
    acked: list[str] = field(default_factory=list)
    enough: threading.Event = field(default_factory=threading.Event)

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    answer = self.send(client, n)
                except httpx.TransportError:
                    return  # the server is gone
                if answer.is_success:
                    self.acked.append(f"{self.name}-{n}")
                if len(self.acked) >= ACKS_BEFORE_KILL:
                    self.enough.set()


def senders(base: str, dsn_key: str) -> list[Sender]:
    loki_auth = bearer("ingest:write", subject="loki-client")
    otlp_auth = {**bearer("ingest:write", subject="otlp-client"),
                 "Content-Type": "application/x-protobuf"}  # fmt: skip

    def loki(client: httpx.Client, n: int) -> httpx.Response:
        body = {"streams": [{"stream": {"job": "durable"}, "values": [["1", f"loki-{n}"]]}]}
        return client.post(f"{base}/loki/api/v1/push", json=body, headers=loki_auth)

    def otlp(client: httpx.Client, n: int) -> httpx.Response:
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.resource_spans.add().scope_spans.add().spans.add(
            trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name=f"otlp-{n}"
        )
        body = request.SerializeToString()
        return client.post(f"{base}/v1/traces", content=body, headers=otlp_auth)

    def sentry(client: httpx.Client, n: int) -> httpx.Response:
        event = {"event_id": f"{n:032x}", "message": f"sentry-{n}"}
        body = b"{}\n" + orjson.dumps({"type": "event"}) + b"\n" + orjson.dumps(event) + b"\n"
        url = f"{base}/api/1/envelope/?sentry_key={dsn_key}"
        return client.post(url, content=body)

    return [Sender("loki", loki), Sender("otlp", otlp), Sender("sentry", sentry)]


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "codequal", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def stored(data_dir: Path, base: str) -> dict[str, set[str]]:
    """What the restarted server holds: logs through its API, spans and events in its database."""
    found: dict[str, set[str]] = {"loki": set()}
    cursor = None
    read = bearer("monitoring:read")
    while True:
        params = {"service": "durable", "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{base}/api/monitoring/logs", params=params, headers=read).json()
        found["loki"].update(item["action"] for item in page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    engine = sa.create_engine(f"sqlite:///{data_dir / 'codequal.db'}")
    with engine.connect() as conn:
        found["otlp"] = set(conn.execute(sa.select(spans.c.name)).scalars())
        payloads = conn.execute(sa.select(error_events.c.payload)).scalars()
        found["sentry"] = {p["message"] for p in payloads}
    engine.dispose()
    return found


def test_every_acknowledged_entry_survives_kill_9_and_a_restart(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CODEQUAL_DATA_DIR": str(tmp_path), "CODEQUAL_PORT": str(port),
           "CODEQUAL_JWT_SECRET": TEST_JWT_SECRET, "CODEQUAL_LOG_LEVEL": "warn"}  # fmt: skip
    created = subprocess.run(
        [sys.executable, "-m", "codequal", "keys", "create", "--name", "app", "--sentry-dsn"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    dsn = created.stdout.strip().splitlines()[-1]
    assert dsn.endswith(f"@127.0.0.1:{port}/1")
    base, dsn_key = f"http://127.0.0.1:{port}", dsn.split("//")[1].split("@")[0]
    stop = threading.Event()
    streams = senders(base, dsn_key)
    with serving(env, port) as proc:
        threads = [threading.Thread(target=s.run, args=(stop,)) for s in streams]
        for thread in threads:
            thread.start()
        for sender in streams:
            assert sender.enough.wait(60), f"{sender.name} got too few acknowledgements"
        proc.send_signal(signal.SIGKILL)  # while all three are still sending
        proc.wait(30)
        stop.set()
        for thread in threads:
            thread.join(30)
    assert proc.returncode == -signal.SIGKILL
    with serving(env, port):
        found = stored(tmp_path, base)
    for sender in streams:
        missing = set(sender.acked) - found[sender.name]
        assert not missing, f"{len(missing)} acknowledged {sender.name} entries were lost"
