"""``codequal serve``: the API, dashboard and background workers in one process, or one role."""

from __future__ import annotations

import signal
import socket
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import click
import uvicorn

from codequal.api.app import create_app
from codequal.cli.common import EXIT_USAGE, config_options, settings_or_exit
from codequal.exceptions import ConfigError
from codequal.runtime.process import Runtime

# The event loop gives the interpreter lock up at every socket write and zlib call; taking it
# back, it waits for whichever worker thread (group commit, span exporter, scraper) took it
# meanwhile, up to the switch interval. At CPython's default 5 ms that wait was a third of
# the loop's time under Sentry ingest (py-spy); at 1 ms, bench_ingest's Sentry rate went from
# 860-1,070 to 1,010-1,030 events/s for the same CPU per event.
SWITCH_INTERVAL_SECONDS = 0.001


class _Server(uvicorn.Server):
    """On SIGTERM / SIGINT, flip /ready to 503 first, then let uvicorn drain and stop."""

    def __init__(self, config: uvicorn.Config, state: Runtime) -> None:
        super().__init__(config)
        self._state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._state.shutting_down = True
        super().handle_exit(sig, frame)
        # uvicorn re-raises captured signals after its graceful shutdown, so the process would
        # die "killed by SIGTERM"; a drained, flushed shutdown on SIGTERM is a clean exit 0.
        self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]


EXIT_STARTUP = 1  # the server could not start: the sentence on stderr says why


@click.command()
@config_options
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", default=None, help="Port to bind (default 8080).")
@click.option(
    "--role",
    type=click.Choice(["all", "api", "worker"], case_sensitive=False),
    default=None,
    help="all (default): everything; api: the HTTP API, dashboard and ingest, no analysis "
    "workers, never the leader; worker: the analysis workers and the leader's duties, serving "
    "only probes and /metrics. Also CODEQUAL_ROLE.",
)
def serve(
    config_file: Path | None, data_dir: Path | None, host: str | None, port: Any, role: str | None
) -> None:
    """Run the CodeQual server (or one role of it, to scale API and workers apart)."""
    settings = settings_or_exit(config_file, data_dir=data_dir, host=host, port=port, role=role)
    _writable_or_exit(settings.data_dir)
    listener = _listen_or_exit(settings.host, settings.port)
    failure: list[str] = []
    servers: list[_Server] = []

    def give_up(reason: str) -> None:  # start-up failed: stop serving, then exit non-zero
        failure.append(reason)
        for running in servers:
            running.should_exit = True

    try:
        app = create_app(settings, set_global_telemetry=True, on_startup_failure=give_up)
    except ConfigError as exc:  # key material named by the settings is unusable
        click.echo(f"codequal: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # The stock asyncio loop on purpose, though uvicorn[standard] installs uvloop: with the
        # span exporter, rule scheduler and scraper threads contending for the GIL, uvloop had
        # 2-3x the p99 of asyncio at 50 clients (bench_dashboard: 230-420 ms against 100-155
        # ms on a loaded 2-core machine) for the same CPU per request. httptools parses.
        loop="asyncio",
        http="auto",
        timeout_graceful_shutdown=int(settings.shutdown_timeout) or None,
    )
    server = _Server(config, app.state.codequal)
    servers.append(server)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)  # this process is the server's alone
    server.run(sockets=[listener])  # builds the loop the config names
    if failure:
        click.echo(f"codequal: start-up failed: {failure[0]}.", err=True)
        sys.exit(EXIT_STARTUP)


def _writable_or_exit(data_dir: Path) -> None:
    """The data dir exists (created if need be) and this user can write in it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".probe-"):
            pass
    except OSError as exc:
        click.echo(
            f"codequal: start-up failed: the data dir {data_dir} is not writable "
            f"({exc.strerror or exc}): choose another with --data-dir or CODEQUAL_DATA_DIR, "
            "or make it writable for this user.",
            err=True,
        )
        sys.exit(EXIT_STARTUP)


def _listen_or_exit(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a port in use is one sentence, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        click.echo(
            f"codequal: start-up failed: cannot listen on {host}:{port} ({exc.strerror or exc}): "
            "stop the other process or choose another port with --port or CODEQUAL_PORT.",
            err=True,
        )
        sys.exit(EXIT_STARTUP)
    sock.set_inheritable(True)
    return sock
