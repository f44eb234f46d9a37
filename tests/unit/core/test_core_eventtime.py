"""Event-time arithmetic in Europe/Amsterdam (contract §8)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from streams.core.eventtime import add_days, add_months, amsterdam_midnight, parse_rfc3339


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        ("2024-01-31T12:00:00+01:00", 1, "2024-02-29T12:00:00+01:00"),
        ("2024-02-29T12:00:00+01:00", 24, "2026-02-28T12:00:00+01:00"),
        ("2024-11-23T10:00:00+01:00", 24, "2026-11-23T10:00:00+01:00"),
        ("2024-03-30T12:00:00+01:00", 1, "2024-04-30T12:00:00+02:00"),
        ("2024-10-31T12:00:00+01:00", -1, "2024-09-30T12:00:00+02:00"),
    ],
)
def test_add_months_keeps_the_amsterdam_wall_clock(start: str, months: int, end: str) -> None:
    assert add_months(parse_rfc3339(start), months) == parse_rfc3339(end)


def test_add_months_ignores_the_written_offset() -> None:
    """1 Dec 00:30 in Amsterdam is 30 Nov 23:30Z; a month later is 1 Jan 00:30 in
    Amsterdam however the instant was written (counting in UTC would give 30 Dec)."""
    written_utc = parse_rfc3339("2024-11-30T23:30:00Z")
    written_local = parse_rfc3339("2024-12-01T00:30:00+01:00")
    assert add_months(written_utc, 1) == add_months(written_local, 1)
    assert add_months(written_utc, 1) == parse_rfc3339("2025-01-01T00:30:00+01:00")


def test_add_days_is_calendar_days() -> None:
    before_dst = parse_rfc3339("2026-03-28T12:00:00+01:00")
    assert add_days(before_dst, 1) == parse_rfc3339("2026-03-29T12:00:00+02:00")


def test_amsterdam_midnight() -> None:
    assert amsterdam_midnight(date(2026, 7, 1)) == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["2026-11-23T10:00:00", "2026-11-23 10:00:00+01:00", "2026-11-23T10:00Z", "now"]
)
def test_rfc3339_needs_the_full_form_with_offset(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)
