"""Prometheus remote write 1.0 in: ``POST /api/v1/write``, a snappy-compressed ``WriteRequest``.

What Prometheus, Grafana Agent / Alloy or the OpenTelemetry Collector's ``prometheusremotewrite``
exporter send. Float samples are stored as they come; exemplars and native histograms are
counted and skipped (the embedded TSDB stores floats). A malformed request is refused whole
with a 400 that says what is wrong, so the sender drops it instead of retrying it forever, as
remote write 1.0 asks of a receiver.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass

import cramjam

from codequal.ingest import IngestError, prom_wire
from codequal.ingest.limits import BodyLimit, MiB, too_large
from codequal.tsdb.prompb import CONTENT_ENCODING, CONTENT_TYPE
from codequal.tsdb.promql import Labels

FORMAT = "remote_write"
# Prometheus sends at most 2 000 samples a request by default (queue_config
# max_samples_per_send); these limits leave room for a sender configured far above that.
LIMIT = BodyLimit(compressed=16 * MiB, decompressed=64 * MiB)
MAX_SAMPLES = 500_000
MAX_LABELS = 64
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

Sample = tuple[Labels, int, float]


@dataclass(frozen=True)
class WriteBatch:
    samples: list[Sample]
    skipped: int  # exemplars and native histogram samples, which are not stored


def check_headers(content_type: str | None, content_encoding: str | None) -> None:
    """Remote write 1.0 is protobuf in snappy's block format, and says so."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != CONTENT_TYPE:
        raise IngestError(415, f"Content-Type must be {CONTENT_TYPE} (Prometheus remote write 1.0)")
    encoding = (content_encoding or "").strip().lower()
    if encoding != CONTENT_ENCODING:
        raise IngestError(
            415, "Content-Encoding must be snappy (remote write 1.0 bodies are snappy-compressed)"
        )


def decode_write(body: bytes) -> WriteBatch:
    """The samples of a snappy-compressed WriteRequest; IngestError when it is not one."""
    raw = _unsnappy(body)
    try:
        samples, skipped = prom_wire.samples(raw, _KNOWN, _check, MAX_SAMPLES)
    except prom_wire.TooMany:
        raise IngestError(
            413, f"the request holds more than {MAX_SAMPLES} samples; lower max_samples_per_send"
        ) from None
    except (ValueError, IndexError, struct.error) as exc:
        raise IngestError(400, f"the body is not a remote write WriteRequest ({exc})") from None
    return WriteBatch(samples, skipped)


# A sender repeats the same series request after request: their checked labels, by the label
# bytes as sent, skip parsing, checks and sorting (most of the cost of a one-sample series).
_KNOWN: dict[bytes, Labels] = {}
MAX_KNOWN = 200_000


def _check(index: int, fields: bytes) -> Labels:
    labels = series_labels(index, prom_wire.label_pairs(fields))
    if len(_KNOWN) >= MAX_KNOWN:
        _KNOWN.clear()
    _KNOWN[fields] = labels
    return labels


def _unsnappy(body: bytes) -> bytes:
    try:
        # The block header states the decompressed size: check it before allocating that much.
        if cramjam.snappy.decompress_raw_len(body) > LIMIT.decompressed:
            raise too_large("the decompressed body", LIMIT.decompressed)
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise IngestError(400, f"the body is not snappy block data ({exc})") from None


def series_labels(index: int, pairs: list[tuple[str, str]]) -> Labels:
    """A series' labels, checked: a metric name, valid and unique label names, a bounded count."""
    where = f"time series {index}"
    if len(pairs) > MAX_LABELS:
        raise IngestError(400, f"{where} has {len(pairs)} labels; the limit is {MAX_LABELS}")
    pairs.sort()
    previous = None
    for label, value in pairs:
        if label == previous:
            raise IngestError(400, f"{where} repeats a label name")
        if value and not _valid_label_name(label):
            raise IngestError(400, f"{where} has an invalid label name {label[:100]!r}")
        previous = label
    # As in Prometheus, a label with an empty value is no label.
    labels = Labels([pair for pair in pairs if pair[1]])
    name = labels.name
    if not _valid_metric_name(name):
        raise IngestError(400, f"{where} has no valid __name__ label (got {name[:100]!r})")
    return labels


# A sender's series share a few names: each is checked once.
@functools.lru_cache(maxsize=4096)
def _valid_label_name(name: str) -> bool:
    return _LABEL_NAME.fullmatch(name) is not None


@functools.lru_cache(maxsize=4096)
def _valid_metric_name(name: str) -> bool:
    return _METRIC_NAME.fullmatch(name) is not None
