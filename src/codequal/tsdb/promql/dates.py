"""The calendar functions (``minute``, ``hour``, ``day_of_week``, ... ``year``), UTC.

Each takes a vector of Unix times in seconds (or, without an argument, the evaluation
time) and answers the part of the date, as Prometheus does: the value is truncated to whole
seconds (Go's ``int64(v)``), the metric name is dropped. Dates come from integer arithmetic
on days since the epoch, so any int64 time works (Python's ``datetime`` stops at year 9999).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from codequal.tsdb.promql.types import Labels, PromQLError, Sample, Value, Vector

DAY_SECONDS = 86_400
_INT64_MIN = -(2**63)
_CUMULATIVE_DAYS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def go_int64(value: float) -> int:
    """Go's ``int64(v)`` on amd64: towards zero; NaN and out-of-range give the minimum."""
    if math.isnan(value) or not -(2.0**63) <= value < 2.0**63:
        return _INT64_MIN
    return int(value)


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month 1-12, day 1-31) of a day counted from 1970-01-01, proleptic Gregorian."""
    # Shift to eras of 400 years starting on 0000-03-01, where leap days fall at the end.
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(seconds: int) -> int:
    year, month, _ = civil_from_days(seconds // DAY_SECONDS)
    if month == 2:
        return 29 if _leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _day_of_year(seconds: int) -> int:
    year, month, day = civil_from_days(seconds // DAY_SECONDS)
    return _CUMULATIVE_DAYS[month - 1] + day + (month > 2 and _leap(year))


PARTS: dict[str, Callable[[int], int]] = {
    "minute": lambda s: s % 3600 // 60,
    "hour": lambda s: s % DAY_SECONDS // 3600,
    "day_of_week": lambda s: (s // DAY_SECONDS + 4) % 7,  # 1970-01-01 was a Thursday
    "day_of_month": lambda s: civil_from_days(s // DAY_SECONDS)[2],
    "day_of_year": _day_of_year,
    "days_in_month": _days_in_month,
    "month": lambda s: civil_from_days(s // DAY_SECONDS)[1],
    "year": lambda s: civil_from_days(s // DAY_SECONDS)[0],
}


def date_function(part: Callable[[int], int]) -> Callable[[Sequence[Value], int], Vector]:
    def apply(args: Sequence[Value], t: int) -> Vector:
        if not args:
            return Vector([Sample(Labels(), float(part(t // 1000)), t)])
        (vector,) = args
        if not isinstance(vector, Vector):
            raise PromQLError("expected an instant vector of Unix times")
        return Vector(
            Sample(s.labels.drop_name(), float(part(go_int64(s.value))), t) for s in vector
        )

    return apply


DATE_FUNCTIONS = {name: date_function(part) for name, part in PARTS.items()}
