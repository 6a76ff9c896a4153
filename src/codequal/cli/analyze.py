"""``codequal analyze``: run the pipeline on a repository in-process (or on a server)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

import click
import httpx
import orjson
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from codequal.analysis.agents.base import parse_severity, severity_at_least
from codequal.analysis.repo import RepositoryError, normalise_source, resolve
from codequal.analysis.store import AnalysisRequest
from codequal.cli.common import (
    EXIT_USAGE,
    config_options,
    open_store,
    output_console,
    settings_or_exit,
)
from codequal.config import Settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.vocabulary import FINDING_SEVERITIES

SEVERITIES = FINDING_SEVERITIES
EXIT_FINDINGS = 1
EXIT_ANALYSIS_FAILED = 3  # the pipeline itself failed (an agent crashed, the disk filled)


@click.command()
@click.argument("repository")
@click.option("--base", required=True, help="Base ref (branch, tag or commit).")
@click.option("--head", required=True, help="Head ref (branch, tag or commit).")
@click.option(
    "--mode",
    type=click.Choice(["auto", "quick", "comprehensive", "deep"]),
    default="auto",
    show_default=True,
)
@click.option("--pr-number", type=int, default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default=None,
    help="Exit 1 when a finding at or above this severity exists.",
)
@click.option("--server", default=None, help="Submit to a running CodeQual at this URL.")
@click.option("--token", envvar="CODEQUAL_TOKEN", default=None, help="Bearer token for --server.")
@config_options
def analyze(  # click passes every option by name
    *,
    repository: str,
    base: str,
    head: str,
    mode: str,
    pr_number: int | None,
    as_json: bool,
    fail_on: str | None,
    server: str | None,
    token: str | None,
    config_file: Path | None,
    data_dir: Path | None,
) -> None:
    """Analyse the changes from BASE to HEAD in REPOSITORY (a path, file:// or https URL)."""
    request = AnalysisRequest(repository, base, head, mode, pr_number)
    if server:
        report = _remote(server, token, request)
    else:
        settings = settings_or_exit(config_file, data_dir=data_dir)
        _check_refs(request)
        report = _local(settings, request, progress=sys.stderr.isatty() and not as_json)
    if as_json:
        click.echo(
            orjson.dumps(
                report, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
            ).decode()
        )
    else:
        _print_report(report)
    if report["status"] == "failed":
        sys.exit(EXIT_USAGE if _is_input_error(report) else EXIT_ANALYSIS_FAILED)
    if fail_on is not None:
        threshold = parse_severity(fail_on)
        if any(severity_at_least(f["severity"], threshold) for f in report["findings"]):
            sys.exit(EXIT_FINDINGS)


def _fail(message: str) -> None:
    click.echo(f"codequal: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _check_refs(request: AnalysisRequest) -> None:
    """Catch a bad path or ref before any work, with a sentence saying what to fix."""
    try:
        source = normalise_source(request.repository_url)
        if not source.startswith(("http://", "https://", "ssh://", "git://")):
            resolve(Path(source), request.base)
            resolve(Path(source), request.head)
    except RepositoryError as exc:
        _fail(str(exc))


def _is_input_error(report: dict[str, Any]) -> bool:
    error = report.get("error") or {}
    return error.get("type") in ("repository", "unknown_ref", "clone_failed")


def _local(settings: Settings, request: AnalysisRequest, *, progress: bool) -> dict[str, Any]:
    settings = settings.model_copy(update={"log_format": "json"})
    db = open_store(settings)
    # Logs go to the store only: stdout carries the report, stderr the progress.
    telemetry = setup_telemetry(
        settings, db, console=cast(BinaryIO, _NullStream()), bridge_stdlib=False
    )
    service = build_analysis(settings, db, telemetry)
    analysis_id = service.store.create(request, time.time())
    try:
        record = service.store.claim(service.pool.worker_id, time.time(), analysis_id)
        assert record is not None
        with _StepProgress(progress) as on_step:
            outcome = service.orchestrator.run(record, on_step)
        service.store.finish(analysis_id, outcome, time.time())
        stored = service.store.get(analysis_id)
        assert stored is not None
        return stored.to_report()
    finally:
        telemetry.shutdown(10)
        db.dispose()


class _NullStream:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class _StepProgress:
    """A spinner per step on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self._enabled:
            return lambda _step: None
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self._progress.start()
        self._task = self._progress.add_task("starting", total=None)
        return self._update

    def _update(self, step: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=step)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _remote(server: str, token: str | None, request: AnalysisRequest) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {
        "repositoryUrl": request.repository_url,
        "base": request.base,
        "head": request.head,
        "mode": request.mode,
        "prNumber": request.pr_number,
    }
    with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=30) as client:
        try:
            response = client.post("/api/analyses", json=body)
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {server}: {exc}")
        if response.status_code != 202:
            _fail(f"the server refused the analysis ({response.status_code}): {response.text}")
        url = response.json()["url"]
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            report: dict[str, Any] = client.get(url).json()
            if report["status"] in ("completed", "failed"):
                return report
            time.sleep(1)
    _fail("the analysis did not finish within an hour")
    raise AssertionError  # unreachable


def _print_report(report: dict[str, Any]) -> None:
    console = output_console()
    status = report["status"]
    console.print(
        f"[bold]{status}[/] · mode {report.get('mode')} ({report.get('modeReason')}) · "
        f"{len(report['findings'])} findings · ${report['cost'].get('total', 0):.6f}"
    )
    if report.get("error"):
        console.print(f"[red]{report['error']['type']}: {report['error']['message']}[/]")
    if not report["findings"]:
        return
    table = Table("severity", "file", "line", "rule", "agent", "message")
    for f in report["findings"]:
        table.add_row(
            f["severity"], f["file"], str(f["line"] or ""), f["rule"], f["agent"], f["message"]
        )
    console.print(table)
