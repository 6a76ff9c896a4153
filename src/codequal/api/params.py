"""Bounded request parameters shared by the routers, so a hostile value is a 422, not a 500.

A database id fits a signed 64-bit integer; a time is a finite Unix second; free text is short.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_ROW_ID = 2**63 - 1  # PostgreSQL's BIGINT, SQLite's INTEGER
MAX_EPOCH = 1e11  # beyond the year 5000: no timestamp we store
MAX_TEXT = 200
MAX_OFFSET = 1_000_000  # deep pages: use a filter instead

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row id (a positive integer)")]
Cursor = Annotated[
    int | None,
    Query(ge=1, le=MAX_ROW_ID, description="`nextCursor` of the previous page"),
]
Epoch = Annotated[
    float | None,
    Query(ge=0, le=MAX_EPOCH, allow_inf_nan=False, description="Unix seconds (UTC)"),
]
Text = Annotated[str | None, Query(max_length=MAX_TEXT)]
