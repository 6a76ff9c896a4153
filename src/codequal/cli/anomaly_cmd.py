"""``codequal anomaly``: backtest the anomaly detectors on exported series."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from codequal.analytics.anomaly import (
    DEFAULT_DETECTOR,
    DETECTORS,
    Anomaly,
    BoundDetector,
    Detector,
    TimeSeries,
)
from codequal.analytics.anomaly.base import duration_text, num
from codequal.analytics.anomaly.csvio import (
    DUPLICATES,
    CSVError,
    Duplicates,
    Labelled,
    read_labelled,
)
from codequal.analytics.anomaly.exhaustion import ExhaustionParams
from codequal.cli.common import EXIT_USAGE, output_console
from codequal.vocabulary import iso_timestamp


@click.group("anomaly")
def anomaly() -> None:
    """Anomaly detection over metric series."""


@anomaly.command("scan")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--detector",
    "detector_name",
    type=click.Choice(sorted(DETECTORS)),
    default=DEFAULT_DETECTOR,
    show_default=True,
    help="Which detector to run.",
)
@click.option(
    "--duplicates",
    type=click.Choice(DUPLICATES),
    default="mean",
    show_default=True,
    help="A timestamp that repeats (a DST change in a local-time export): average its rows, "
    "keep the last, or refuse the file.",
)
@click.option(
    "--capacity",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="For the *_exhaustion detectors: the value that means full (default 1.0, a ratio).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def scan(
    file: Path,
    detector_name: str,
    duplicates: Duplicates,
    capacity: float | None,
    as_json: bool,
) -> None:
    """Run a detector over FILE, a CSV of timestamp,value[,events] rows, and print each
    anomaly with its score and explanation.

    Timestamps are ISO 8601 (T or space, naive means UTC) or Unix seconds; the optional
    events column is the traffic behind each value. Judged as of the last row. In --json,
    each anomaly's start is the time it was detected and start and end are written as in
    FILE.
    """
    detector = _with_capacity(DETECTORS[detector_name], capacity)
    try:
        labelled = read_labelled(file, duplicates)
    except CSVError as exc:
        click.echo(f"codequal: {file}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    series = labelled.series
    _warn_over_capacity(detector, series)
    found = detector.detect(series, series.timestamps[-1])
    if as_json:
        click.echo(json.dumps(_payload(detector.name, labelled, found), indent=2))
        return
    console = output_console()
    console.print(_summary(detector.name, series, found))
    if found:
        console.print(_table(found))


def _with_capacity(detector: Detector, capacity: float | None) -> Detector:
    if capacity is None:
        return detector
    if not (isinstance(detector, BoundDetector) and isinstance(detector.params, ExhaustionParams)):
        exhaustion = ", ".join(n for n in DETECTORS if n.endswith("_exhaustion"))
        click.echo(f"codequal: --capacity applies to {exhaustion} only", err=True)
        sys.exit(EXIT_USAGE)
    params = dataclasses.replace(detector.params, capacity=capacity)
    return dataclasses.replace(detector, params=params)


def _warn_over_capacity(detector: Detector, series: TimeSeries) -> None:
    # Bytes judged against the default capacity 1.0 would all read "full now".
    if isinstance(detector, BoundDetector) and isinstance(detector.params, ExhaustionParams):
        top = max((v for v in series.values if math.isfinite(v)), default=0.0)
        capacity = detector.params.capacity
        if top > capacity:
            click.echo(
                f"codequal: values reach {num(top)}, above the capacity {num(capacity)}: "
                "pass --capacity with the value that means full",
                err=True,
            )


def _payload(name: str, labelled: Labelled, found: list[Anomaly]) -> dict[str, object]:
    series = labelled.series
    return {
        "detector": name,
        "samples": len(series.timestamps),
        "from": iso_timestamp(series.timestamps[0]),
        "to": iso_timestamp(series.timestamps[-1]),
        "anomalies": [_anomaly_json(a, labelled) for a in found],
    }


def _anomaly_json(a: Anomaly, labelled: Labelled) -> dict[str, object]:
    # Times as the file writes them, so a detection can be matched back to its row.
    return {
        **a.to_json(),
        "start": labelled.text(a.start),
        "end": labelled.text(a.end),
        "peak_at": labelled.text(a.peak_at),
    }


def _summary(name: str, series: TimeSeries, found: list[Anomaly]) -> str:
    ts = series.timestamps
    windows = f"{len(found)} anomaly window{'s' if len(found) != 1 else ''}"
    return (
        f"{name}: {len(ts)} samples from {_short(ts[0])} to {_short(ts[-1])}: "
        f"{windows if found else 'no anomalies'}"
    )


def _table(found: list[Anomaly]) -> Table:
    table = Table(show_lines=True)
    for column in ("start", "end", "status", "peak", "baseline", "band", "score"):
        table.add_column(column, no_wrap=True)
    table.add_column("explanation", overflow="fold")
    for a in found:
        span = f"\n({duration_text(a.end - a.start)})" if a.end > a.start else ""
        table.add_row(
            _short(a.start),
            _short(a.end) + span,
            a.status,
            f"{num(a.peak)} {'↑' if a.direction == 'up' else '↓'}",
            num(a.baseline),
            _band(a.band),
            f"{a.score:.3g}",
            a.explanation,
        )
    return table


def _band(band: tuple[float, float]) -> str:
    low, high = band
    return f"up to {num(high)}" if math.isinf(low) else f"{num(low)} to {num(high)}"


def _short(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
