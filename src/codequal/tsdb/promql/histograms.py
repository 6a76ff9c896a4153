"""``histogram_quantile`` over classic histograms (``le`` bucket series), as Prometheus 2.x."""

from __future__ import annotations

import math
from bisect import bisect_left

from codequal.tsdb.promql import gomath
from codequal.tsdb.promql.types import METRIC_NAME, Labels, Sample, Vector

BUCKET_LABEL = "le"


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:  # noqa: PLR0911
    """Prometheus's ``bucketQuantile`` over (upper bound, cumulative count) pairs."""
    if math.isnan(q):
        return gomath.NAN
    if q < 0:
        return -gomath.INF
    if q > 1:
        return gomath.INF
    buckets = sorted(buckets, key=lambda b: b[0])
    if buckets[-1][0] != gomath.INF:
        return gomath.NAN
    bounds, counts = _coalesce(buckets)
    _ensure_monotonic(counts)
    if len(bounds) < 2:
        return gomath.NAN
    observations = counts[-1]
    if observations == 0:
        return gomath.NAN
    rank = q * observations
    # sort.Search over all but the +Inf bucket: the first bucket whose count reaches rank.
    b = _search(counts, rank, len(counts) - 1)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    # Assume observations are spread evenly inside the bucket (linear interpolation).
    return start + (end - start) * gomath.div(rank, count)


def _search(counts: list[float], rank: float, n: int) -> int:
    # Counts are monotonic here, so a bisection finds what sort.Search finds.
    return bisect_left(counts, rank, 0, n)


def _coalesce(buckets: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Merge buckets with the same bound (``le="1"`` and ``le="1.0"``) by adding counts."""
    bounds = [buckets[0][0]]
    counts = [buckets[0][1]]
    for bound, count in buckets[1:]:
        if bound == bounds[-1]:
            counts[-1] += count
        else:
            bounds.append(bound)
            counts.append(count)
    return bounds, counts


def _ensure_monotonic(counts: list[float]) -> None:
    """Cumulative counts cannot decrease; scrapes taken mid-update can make them (#2986)."""
    high = -gomath.INF
    for i, count in enumerate(counts):
        if count > high:
            high = count
        elif count < high:
            counts[i] = high


def histogram_quantile(q: float, vector: Vector, t: int) -> Vector:
    """Group bucket samples by their labels without ``le`` and interpolate the quantile."""
    groups: dict[Labels, tuple[Labels, list[tuple[float, float]]]] = {}
    for sample in vector:
        bound = gomath.parse_float(sample.labels.get(BUCKET_LABEL))
        if bound is None:
            continue  # no or malformed le label: skipped, as Prometheus does
        # The metric name is part of the group key (then dropped from the output).
        key = sample.labels.without((BUCKET_LABEL,))
        group = groups.get(key)
        if group is None:
            group = groups[key] = (key.without((METRIC_NAME,)), [])
        group[1].append((bound, sample.value))
    return Vector(Sample(labels, bucket_quantile(q, b), t) for labels, b in groups.values())
