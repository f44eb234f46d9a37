"""Issue 12 §6: without a TTY the demo prints one compact line per interval."""

from __future__ import annotations

import re

from streams.commands.demo import compact_line


def test_one_compact_line() -> None:
    line = compact_line(
        7000, 35.2, {"approved": 10, "blocked": 90, "dead letters": 1},
        [("BLOCK BLOCK_NO_LEGAL_BASIS", 50), ("ALLOW ALLOW_SERVICE_MESSAGE", 9),
         ("DEAD  wrong_key", 1)],
    )
    assert "\n" not in line
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d \+35s published 7000 \(199/s\) \| approved 10 blocked 90 "
        r"dead letters 1 \| top: BLOCK BLOCK_NO_LEGAL_BASIS 50, "
        r"ALLOW ALLOW_SERVICE_MESSAGE 9, DEAD wrong_key 1",
        line,
    ), line
    assert len(line) < 200


def test_before_any_decision() -> None:
    line = compact_line(0, 1.0, {}, [])
    assert line.endswith("published 0 (0/s) | no decisions yet")
