"""Unit tests of window-bound parsing and the progress line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.audit.progress import Progress, format_duration, render_line
from streams.audit.window import (
    WindowError,
    parse_bound,
    parse_rfc3339,
    positions_to_json,
)
from streams.ordering import merge_key


def test_keywords() -> None:
    assert parse_bound("beginning").kind == "beginning"
    assert parse_bound("end", is_end=True).kind == "end"
    assert parse_bound("now", is_end=True).kind == "end"
    with pytest.raises(WindowError):
        parse_bound("end")
    with pytest.raises(WindowError):
        parse_bound("beginning", is_end=True)


def test_time_bounds() -> None:
    b = parse_bound("2026-11-23T00:00:00+01:00")
    assert b.kind == "time" and b.time == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    assert b.time_ms == int(datetime(2026, 11, 22, 23, 0, tzinfo=UTC).timestamp() * 1000)
    assert parse_rfc3339("2026-11-23T10:00:00Z").tzinfo is not None
    for bad in ("yesterday", "2026-11-23T10:00:00", ""):
        with pytest.raises(WindowError):
            parse_bound(bad)


def test_inline_offsets_get_the_prefix() -> None:
    b = parse_bound("send-requests:0=15, send-requests:1=20,orders:0=3", prefix="x.")
    assert b.kind == "offsets"
    assert b.offsets == {("x.send-requests", 0): 15, ("x.send-requests", 1): 20, ("x.orders", 0): 3}
    # an already prefixed name is not prefixed twice
    assert parse_bound("x.send-requests:2=1", prefix="x.").offsets == {("x.send-requests", 2): 1}
    with pytest.raises(WindowError):
        parse_bound("send-requests:0=abc")
    with pytest.raises(WindowError):
        parse_bound("send-requests=5")


def test_offsets_file_round_trips(tmp_path: Path) -> None:
    positions = {("send-requests", 0): 15, ("send-requests", 1): 20}
    f = tmp_path / "w.json"
    f.write_text(json.dumps(positions_to_json(positions)))
    assert parse_bound(f"@{f}").offsets == positions
    assert parse_bound(str(f)).offsets == positions
    report = tmp_path / "last.json"
    report.write_text(json.dumps({"window": {"resume_from": positions_to_json(positions)}}))
    assert parse_bound(f"@{report}").offsets == positions
    f.write_text('{"send-requests": [1, 2]}')
    with pytest.raises(WindowError):
        parse_bound(f"@{f}")
    with pytest.raises(WindowError):
        parse_bound(f"@{tmp_path / 'missing.json'}")


def test_merge_key_orders_by_time_then_sequence_then_topic_then_offset() -> None:
    keys = [merge_key(5, 0, 3, 0, 1), merge_key(5, 0, 0, 2, 9), merge_key(4, 9, 3, 0, 0),
            merge_key(5, 0, 0, 2, 3), merge_key(5, 7, 0, 0, 0)]
    assert sorted(keys) == [(4, 9, 3, 0, 0), (5, 0, 0, 2, 3), (5, 0, 0, 2, 9), (5, 0, 3, 0, 1),
                            (5, 7, 0, 0, 0)]


def test_progress_line() -> None:
    line = render_line("replay", 50_000, 100_000, 2.0)
    assert "50.0%" in line and "25,000 ev/s" in line and "ETA 00:02" in line
    assert "ev/s" in render_line("replay", 10, 0, 1.0)
    assert format_duration(3725) == "1:02:05"


class FakeTTY(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_quiet_off_a_terminal() -> None:
    quiet = FakeTTY(False)
    p = Progress("replay", 10, stream=quiet)
    for _ in range(10):
        p.advance()
    p.finish()
    assert quiet.getvalue() == ""


def test_progress_draws_on_a_terminal() -> None:
    tty = FakeTTY(True)
    now = [0.0]
    p = Progress("replay", 10, stream=tty, clock=lambda: now[0])
    for _ in range(10):
        now[0] += 0.1
        p.advance()
    p.stage("decisions", 5)
    p.finish()
    out = tty.getvalue()
    assert "\r" in out and "replay" in out and "decisions" in out and out.endswith("\n")
