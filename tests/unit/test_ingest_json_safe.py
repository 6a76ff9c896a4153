"""json_safe: what every ingested attribute, context and resource goes through before storing."""

from __future__ import annotations

from collections import OrderedDict, UserDict
from typing import NamedTuple

import orjson

from codequal.ingest import MAX_DEPTH, json_safe


class Pair(NamedTuple):
    name: str
    value: int


class Tags(list[str]):
    pass


def test_values_neither_database_nor_orjson_accepts_are_made_storable() -> None:
    value = {"a\x00b": ["x\x00y", 2**70, float("nan"), float("inf"), 1.5, True, None, -(2**63)]}
    safe = json_safe(value)
    assert safe == {"a\ufffdb": ["x\ufffdy", str(2**70), "nan", "inf", 1.5, True, None, -(2**63)]}
    orjson.dumps(safe)  # and orjson takes it


def test_containers_that_are_not_plain_dicts_lists_or_tuples_are_walked_too() -> None:
    value = UserDict({"tags": Tags(["a\x00"]), "pair": Pair("n\x00", 2**64), "o": OrderedDict(k=1)})
    assert json_safe(value) == {"tags": ["a\ufffd"], "pair": ["n\ufffd", str(2**64)], "o": {"k": 1}}


def test_nesting_past_the_limit_is_cut() -> None:
    deep: list[object] = []
    inner = deep
    for _ in range(MAX_DEPTH + 5):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    safe = json_safe(deep)
    for _ in range(MAX_DEPTH):
        safe = safe[0]
    assert safe == "[Truncated]"
