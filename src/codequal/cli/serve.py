"""``codequal serve``: the API, dashboard and background workers in one process, or one role."""

from __future__ import annotations

import signal
import sys
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
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        app = create_app(settings, set_global_telemetry=True)
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
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)  # this process is the server's alone
    server.run()  # builds the loop the config names
