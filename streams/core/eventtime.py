"""Event-time arithmetic (contract §8). The core never reads a clock: every instant here
comes from an event.

Calendar months and days are counted in Europe/Amsterdam local time, so a window does not
depend on the offset a timestamp happened to be written with.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp with offset, truncated to the millisecond (contract v1.4);
    ValueError when malformed or without offset."""
    match = _RFC3339.match(text)
    if not match:
        raise ValueError("not an RFC 3339 timestamp with offset")
    fraction = match.group(1)
    if fraction is not None and len(fraction) != 4:
        start = match.start(1)
        text = text[:start] + (fraction + "00")[:4] + text[match.end(1) :]
    return datetime.fromisoformat(text)


def to_millis(instant: datetime) -> datetime:
    """`instant` truncated to the millisecond (contract v1.4: finer fractions dropped)."""
    micros = instant.microsecond
    return instant if micros % 1000 == 0 else instant.replace(microsecond=micros - micros % 1000)


def format_rfc3339(instant: datetime) -> str:
    """ISO form; a fraction is written to the millisecond (the contract's precision)."""
    text = instant.isoformat(timespec="milliseconds" if instant.microsecond else "seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def to_utc(instant: datetime) -> datetime:
    """UTC copy; facts keep UTC so that comparisons take CPython's same-tzinfo fast path."""
    return instant if instant.tzinfo is UTC else instant.astimezone(UTC)


def amsterdam_midnight(day: date) -> datetime:
    """00:00 Europe/Amsterdam of `day`, in UTC (the R-PHONE-2 date is given this way)."""
    return datetime.combine(day, time(0, 0), tzinfo=AMSTERDAM).astimezone(UTC)


@lru_cache(maxsize=1 << 16)
def add_months(instant: datetime, months: int) -> datetime:
    """`instant` plus N calendar months in Amsterdam time, clamped to the month's last day
    (contract §8 "same day of month, or the month's last day"); returned in UTC."""
    local = instant.astimezone(AMSTERDAM)
    month_index = local.month - 1 + months
    year = local.year + month_index // 12
    month = month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    shifted = local.replace(tzinfo=None, year=year, month=month, day=day)
    return shifted.replace(tzinfo=AMSTERDAM).astimezone(UTC)


@lru_cache(maxsize=1 << 14)
def add_days(instant: datetime, days: int) -> datetime:
    """`instant` plus N calendar days in Amsterdam time (same wall-clock time), in UTC."""
    local = instant.astimezone(AMSTERDAM).replace(tzinfo=None) + timedelta(days=days)
    return local.replace(tzinfo=AMSTERDAM).astimezone(UTC)
