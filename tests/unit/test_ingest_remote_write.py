"""A remote write series' labels are checked as Prometheus's receiver checks them."""

from __future__ import annotations

import pytest

from codequal.ingest import IngestError
from codequal.ingest.remote_write import MAX_LABELS, series_labels
from codequal.tsdb.promql import Labels


def test_labels_come_back_sorted_without_empty_values() -> None:
    pairs = [("job", "node"), ("__name__", "up"), ("zone", ""), ("instance", "a:1")]
    assert series_labels(0, pairs) == Labels(
        (("__name__", "up"), ("instance", "a:1"), ("job", "node"))
    )


def test_a_label_of_empty_value_is_no_label_whatever_its_name() -> None:
    # Prometheus drops it; it is not a name this series has.
    assert series_labels(0, [("__name__", "up"), ("not-a-name", "")]) == Labels.of(
        {"__name__": "up"}
    )


@pytest.mark.parametrize(
    ("pairs", "says"),
    [
        ([("__name__", "up"), ("job", "a"), ("job", "b")], "time series 3 repeats a label name"),
        ([("__name__", "up"), ("job", ""), ("job", "b")], "repeats a label name"),
        ([("__name__", "up"), ("a-b", "x")], "invalid label name 'a-b'"),
        ([("__name__", "up"), ("0a", "x")], "invalid label name '0a'"),
        ([("job", "x")], "has no valid __name__ label (got '')"),
        ([("__name__", "9up")], "has no valid __name__ label (got '9up')"),
        ([("__name__", "up")] + [(f"l{i}", "v") for i in range(MAX_LABELS)], "the limit is"),
    ],
)
def test_bad_labels_are_refused_with_a_sentence(pairs: list[tuple[str, str]], says: str) -> None:
    with pytest.raises(IngestError) as refused:
        series_labels(3, pairs)
    assert refused.value.status == 400
    assert says in str(refused.value)
