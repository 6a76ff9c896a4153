"""``codequal analyze``: run the pipeline on a repository in-process (or on a server).

Exit codes: 0 done; 1 a new finding at or above ``--fail-on`` (or a file or agent the analysis
could not read that could hide one); 2 the input cannot be used (a path that is not a
repository, a ref that does not exist: the analysis is rejected); 3 the analysis failed;
4 the analysis is partial (an agent failed or a file was not read) unless ``--allow-partial``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

import click
import orjson

from codequal.analysis.agents.base import parse_severity, severity_at_least
from codequal.analysis.repo import RepositoryError, check_ref, normalise_source, resolve
from codequal.analysis.sarif import to_sarif
from codequal.analysis.store import AnalysisRecord, AnalysisRequest
from codequal.cli.analyze_output import print_github, print_text
from codequal.cli.analyze_progress import StepProgress
from codequal.cli.analyze_remote import fail, remote_analysis
from codequal.cli.common import EXIT_USAGE, config_options, open_store, settings_or_exit
from codequal.config import Settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.vocabulary import FINDING_SEVERITIES

SEVERITIES = FINDING_SEVERITIES
EXIT_FINDINGS = 1
EXIT_ANALYSIS_FAILED = 3  # the pipeline itself failed (an agent crashed, the disk filled)
EXIT_PARTIAL = 4  # a report, but something was not read; --allow-partial accepts it
FORMATS = ("text", "json", "sarif", "github")


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
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default=None,
    help="text (default), json (the report), sarif (SARIF 2.1.0) or github (annotations).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--all-findings", is_flag=True,
    help="Also report findings on lines the change did not touch (existing ones).",
)  # fmt: skip
@click.option(
    "--allow-partial", is_flag=True,
    help="Exit 0 (not 4) when an agent failed or a file could not be analysed.",
)  # fmt: skip
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default=None,
    help="Exit 1 when a new finding at or above this severity exists, or when a file or "
    "agent the analysis could not read could hide one.",
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
    fmt: str | None,
    as_json: bool,
    all_findings: bool,
    allow_partial: bool,
    fail_on: str | None,
    server: str | None,
    token: str | None,
    config_file: Path | None,
    data_dir: Path | None,
) -> None:
    """Analyse the changes from BASE to HEAD in REPOSITORY (a path, file:// or https URL)."""
    if as_json and fmt not in (None, "json"):
        fail(f"--json and --format {fmt} ask for two formats; give one")
    fmt = "json" if as_json else fmt or "text"
    request = AnalysisRequest(repository, base, head, mode, pr_number)
    if server:
        report, sarif = remote_analysis(server, token, request, fmt == "sarif", all_findings)
    else:
        settings = settings_or_exit(config_file, data_dir=data_dir)
        _check_input(request)
        record = _local(settings, request, progress=True)
        report = record.to_report(all_findings)
        sarif = to_sarif(record, all_findings) if fmt == "sarif" else None
    _print(report, sarif, fmt, all_findings)
    sys.exit(exit_code(report, fail_on, allow_partial))


def _print(report: dict[str, Any], sarif: dict[str, Any] | None, fmt: str, all_: bool) -> None:
    if fmt == "text":
        print_text(report, all_)
    elif fmt == "github":
        print_github(report, all_)
    else:
        data = sarif if fmt == "sarif" else report
        option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        click.echo(orjson.dumps(data, default=str, option=option).decode())


def exit_code(report: dict[str, Any], fail_on: str | None, allow_partial: bool) -> int:
    """The exit status for a finished report (see the module docstring)."""
    status = report["status"]
    if status == "rejected":
        error = report.get("error") or {}
        click.echo(f"codequal: {error.get('message', 'the analysis was rejected')}", err=True)
        return EXIT_USAGE
    if status == "failed":
        return EXIT_ANALYSIS_FAILED
    if fail_on is not None and over_threshold(report, parse_severity(fail_on)):
        return EXIT_FINDINGS
    if status == "partial" and not allow_partial:
        return EXIT_PARTIAL
    return 0


def over_threshold(report: dict[str, Any], threshold: Any) -> bool:
    """A new finding at or above ``threshold``, or a gap that could hide one."""
    if any(severity_at_least(f["severity"], threshold) for f in report["findings"]):
        return True
    coverage = report.get("coverage") or {}
    hidden = [s["couldHide"] for s in coverage.get("skipped", []) if s.get("couldHide")]
    hidden += [a["couldHide"] for a in coverage.get("agents", {}).values() if a.get("couldHide")]
    return any(severity_at_least(h, threshold) for h in hidden)


def _check_input(request: AnalysisRequest) -> None:
    """Catch a bad path or ref before any work, with a sentence saying what to fix."""
    try:
        check_ref(request.base)
        check_ref(request.head)
        source = normalise_source(request.repository_url)
        if not source.startswith(("http://", "https://", "ssh://", "git://")):
            resolve(Path(source), request.base)
            resolve(Path(source), request.head)
    except RepositoryError as exc:
        fail(str(exc))


def _local(settings: Settings, request: AnalysisRequest, *, progress: bool) -> AnalysisRecord:
    settings = settings.model_copy(update={"log_format": "json"})
    db = open_store(settings)
    # Logs go to the store only: stdout carries the report, stderr the progress.
    telemetry = setup_telemetry(
        settings, db, console=cast(BinaryIO, _NullStream()), bridge_stdlib=False
    )
    service = build_analysis(settings, db, telemetry, local_user=True)
    analysis_id = service.store.create(service.sealed(request), time.time())
    try:
        record = service.store.claim(service.pool.worker_id, time.time(), analysis_id)
        assert record is not None
        with StepProgress(enabled=progress) as listener:
            outcome = service.orchestrator.run(record, listener.step, listener.agent)
        service.store.finish(analysis_id, outcome, time.time())
        stored = service.store.get(analysis_id)
        assert stored is not None
        return stored
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
