"""The `decide` command's processing, minus the I/O: JSONL lines in, decisions and line
rejections out (contract §9). Tests run scenario files through exactly this."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from streams.core.engine import DecisionEngine
from streams.core.errors import RejectedRecord, Rejection
from streams.core.jsonsafe import loads_bounded
from streams.core.model import Decision
from streams.core.parse import parse_event


@dataclass(frozen=True, slots=True)
class LineRejection:
    """A line that is not JSON or breaks the contract; the rest of the file goes on."""

    line: int
    reason: Rejection
    field: str
    message: str

    def describe(self) -> str:
        where = f" field {self.field}:" if self.field else ""
        return f"line {self.line}:{where} {self.reason.value}: {self.message}"


def decide_lines(
    lines: Iterable[str], engine: DecisionEngine
) -> Iterator[Decision | LineRejection]:
    """Each input line in order: its decisions (revocations included) or its rejection.
    Blank lines are skipped; `expect` is ignored."""
    for number, line in enumerate(lines, start=1):
        if not line or line.isspace():  # as `not line.strip()`, without the copy
            continue
        try:
            record = loads_bounded(line)
        except RejectedRecord as exc:  # not JSON, too large or too deeply nested
            yield LineRejection(number, exc.reason, "", exc.message)
            continue
        try:
            decisions = engine.feed(parse_event(record))
        except RejectedRecord as exc:
            yield LineRejection(number, exc.reason, exc.field, exc.message)
            continue
        yield from decisions
