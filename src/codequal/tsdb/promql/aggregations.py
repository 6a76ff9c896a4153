"""Aggregation operators (``sum by (job) (...)``, ``topk``, ``count_values``, ...).

A port of Prometheus 2.x's ``aggregation``: groups in order of first appearance, the same
incremental formulas (so ``avg`` and ``stddev`` round exactly like Prometheus) and the same
label rules (``without`` also drops the metric name; ``by`` keeps only the listed labels).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

from codequal.tsdb.promql import gomath
from codequal.tsdb.promql.functions import LABEL_NAME
from codequal.tsdb.promql.range_functions import quantile
from codequal.tsdb.promql.types import METRIC_NAME, Labels, PromQLError, Sample, Vector

_INT64_MAX = 2.0**63


def _group_keyer(grouping: Sequence[str], without: bool) -> Callable[[Labels], object]:
    if without:
        dropped = frozenset(grouping) | {METRIC_NAME}
        return lambda labels: tuple(p for p in labels if p[0] not in dropped)
    names = tuple(grouping)
    return lambda labels: tuple([labels.get(n) for n in names])


def _group_labels(labels: Labels, grouping: Sequence[str], without: bool) -> Labels:
    if without:
        return labels.without((*grouping, METRIC_NAME))
    return labels.keep(grouping)


GroupKeyCache = dict[Labels, tuple[object, Labels]]


def _groups(
    vector: Sequence[Sample],
    grouping: Sequence[str],
    without: bool,
    cache: GroupKeyCache | None = None,
) -> dict[object, tuple[Labels, list[Sample]]]:
    """Samples by group key, in order of first appearance, with each group's labels.

    ``cache`` (labels -> key and group labels) lets a range query work them out once per
    series instead of once per step.
    """
    key_of = _group_keyer(grouping, without)
    cache = {} if cache is None else cache
    groups: dict[object, tuple[Labels, list[Sample]]] = {}
    for sample in vector:
        entry = cache.get(sample.labels)
        if entry is None:
            labels = sample.labels
            entry = cache[labels] = (key_of(labels), _group_labels(labels, grouping, without))
        group = groups.get(entry[0])
        if group is None:
            group = groups[entry[0]] = (entry[1], [])
        group[1].append(sample)
    return groups


def _sum(values: Sequence[float]) -> float:
    total = values[0]
    for v in values[1:]:
        total += v
    return total


def _avg(values: Sequence[float]) -> float:
    mean = values[0]
    count = 1.0
    for v in values[1:]:
        count += 1
        if math.isinf(mean) and ((math.isinf(v) and (mean > 0) == (v > 0)) or math.isfinite(v)):
            continue  # an infinite mean stays put (the update would make it NaN)
        # Each side divided by count first, to avoid overflow (as Prometheus does).
        mean += v / count - mean / count
    return mean


def _max(values: Sequence[float]) -> float:
    high = values[0]
    for v in values[1:]:
        if high < v or math.isnan(high):
            high = v
    return high


def _min(values: Sequence[float]) -> float:
    low = values[0]
    for v in values[1:]:
        if low > v or math.isnan(low):
            low = v
    return low


def _stdvar(values: Sequence[float]) -> float:
    mean, aux, count = values[0], 0.0, 1.0
    for v in values[1:]:
        count += 1
        d = v - mean
        mean += d / count
        aux += d * (v - mean)
    return aux / count


_SIMPLE: dict[str, Callable[[Sequence[float]], float]] = {
    "sum": _sum,
    "avg": _avg,
    "max": _max,
    "min": _min,
    "count": lambda values: float(len(values)),
    "group": lambda values: 1.0,
    "stdvar": _stdvar,
    "stddev": lambda values: gomath.sqrt(_stdvar(values)),
}


def _top_key(sample: Sample) -> tuple[bool, float]:
    # NaN ranks below everything, in both topk and bottomk.
    return (not math.isnan(sample.value), sample.value)


def _bottom_key(sample: Sample) -> tuple[bool, float]:
    return (not math.isnan(sample.value), -sample.value)


def _k(param: float) -> int:
    if math.isnan(param) or abs(param) >= _INT64_MAX:
        raise PromQLError(f"Scalar value {gomath.format_float(param)} overflows int64")
    return int(param)


def _top_bottom(op: str, k: int, groups: dict[object, tuple[Labels, list[Sample]]]) -> Vector:
    """topk / bottomk keep whole samples (all labels); each group sorted best first."""
    out: list[Sample] = []
    key = _top_key if op == "topk" else _bottom_key
    for _, samples in groups.values():
        out.extend(heapq.nlargest(k, samples, key=key))
    return Vector(out)


def _count_values(
    label: str, vector: Sequence[Sample], grouping: Sequence[str], without: bool, t: int
) -> Vector:
    if not LABEL_NAME.fullmatch(label):
        raise PromQLError(f'invalid label name "{label}"')
    relabelled = [
        Sample(s.labels.set(label, gomath.format_float(s.value)), s.value, s.t) for s in vector
    ]
    if not without:
        grouping = sorted({*grouping, label})
    groups = _groups(relabelled, grouping, without)
    return Vector(Sample(labels, float(len(samples)), t) for labels, samples in groups.values())


def aggregate(
    op: str,
    vector: Sequence[Sample],
    *,
    grouping: Sequence[str],
    without: bool,
    param: float | str | None,
    t: int,
    cache: GroupKeyCache | None = None,
) -> Vector:
    """Evaluate one aggregation at time ``t`` (``cache``: see :func:`_groups`)."""
    if op == "count_values":
        assert isinstance(param, str)
        return _count_values(param, vector, grouping, without, t)
    if op in ("topk", "bottomk"):
        assert isinstance(param, float)
        k = _k(param)
        if k < 1:
            return Vector()
        return _top_bottom(op, k, _groups(vector, grouping, without, cache))
    groups = _groups(vector, grouping, without, cache)
    if op == "quantile":
        assert isinstance(param, float)
        return Vector(
            Sample(labels, quantile(param, [s.value for s in samples]), t)
            for labels, samples in groups.values()
        )
    fn = _SIMPLE.get(op)
    if fn is None:
        raise PromQLError(f'aggregation "{op}" is not supported')
    return Vector(
        Sample(labels, fn([s.value for s in samples]), t) for labels, samples in groups.values()
    )
