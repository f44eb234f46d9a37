"""Issue 12 §1: hostile JSON at every entry point is a clear rejection, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.core.errors import DecodeError, Rejection
from streams.core.jsonsafe import MAX_JSON_DEPTH, loads_bounded

DEEP = "[" * 100_000 + "]" * 100_000


def test_depth_beyond_the_parser_limit_is_bad_json() -> None:
    with pytest.raises(RecursionError):
        json.loads(DEEP)  # what the entry points did before
    with pytest.raises(DecodeError) as info:
        loads_bounded(DEEP)
    assert info.value.reason is Rejection.BAD_JSON
    assert "nested deeper" in info.value.message


def test_depth_just_past_our_limit_is_refused_and_at_it_accepted() -> None:
    at = '{"a":' * (MAX_JSON_DEPTH - 1) + "[]" + "}" * (MAX_JSON_DEPTH - 1)
    assert loads_bounded(at) is not None
    past = "[" + at + "]"
    with pytest.raises(DecodeError) as info:
        loads_bounded(past)
    assert info.value.reason is Rejection.BAD_JSON


def test_many_brackets_side_by_side_are_fine() -> None:
    flat = json.dumps({"xs": [[i] for i in range(500)]})
    assert len(loads_bounded(flat)["xs"]) == 500


def test_oversize_is_refused_before_parsing() -> None:
    with pytest.raises(DecodeError) as info:
        loads_bounded(b'"' + b"x" * 64 + b'"', max_bytes=32)
    assert info.value.reason is Rejection.OVERSIZE


@pytest.mark.parametrize("text", ["{", "NaN", '{"a": 1e999}', b"\xff\xfe"])
def test_malformed_is_bad_json(text: str | bytes) -> None:
    with pytest.raises(DecodeError) as info:
        loads_bounded(text)
    assert info.value.reason is Rejection.BAD_JSON


def test_decide_reports_a_deep_line_without_a_traceback(tmp_path: Path) -> None:
    good = (
        '{"type": "signup", "event_id": "e1", "occurred_at": "2026-11-23T09:41:00+01:00",'
        ' "tenant": "t", "legal_entity": "Shop BV"}'
    )
    path = tmp_path / "in.jsonl"
    path.write_text(DEEP + "\n" + good + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "decide", "--dev-key", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert "Traceback" not in done.stderr
    assert "line 1: bad_json: nested deeper" in done.stderr
    assert done.returncode == 1


@pytest.mark.parametrize("stdin", [False, True])
def test_decide_rejects_a_line_that_is_not_utf8_and_goes_on(tmp_path: Path, stdin: bool) -> None:
    good = (
        b'{"type": "signup", "event_id": "e1", "occurred_at": "2026-11-23T09:41:00+01:00",'
        b' "tenant": "t", "legal_entity": "Shop BV"}'
    )
    data = b'{"type": "signup", "tenant": "\xff"}\n' + good + b"\n"
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "decide", "--dev-key", "-" if stdin else str(path)],
        input=data if stdin else None, capture_output=True, timeout=60,
    )
    err = done.stderr.decode()
    assert "Traceback" not in err
    assert "line 1: bad_json: not JSON" in err
    assert "line 2: field kind" in err  # the run went on to the next line
    assert done.returncode == 1
