"""Parsing of `--from` / `--to` and the replay order: pure, so it is unit-tested.

A bound is one of:

* `beginning` (only `--from`) / `end` (only `--to`, the default): the log start, or the
  high watermark read when the audit starts;
* an RFC 3339 time, e.g. `2026-11-23T00:00:00+01:00`: per partition, the first record
  whose broker timestamp is at or after it (Kafka `offsets_for_times`);
* explicit offsets `TOPIC:PARTITION=OFFSET,...`, e.g. `send-requests:0=15,send-requests:1=20`,
  or `@FILE` / a path to a JSON file `{"send-requests": {"0": 15, "1": 20}}`, or a previous
  JSON report (its `window.resume_from`: a cron job chains runs with `--from @last.json`).
  Topic names are catalogue names (the `--topic-prefix` is added) or already prefixed.

Only the positions on the send-request topic select the audited requests; positions on
the other input topics are accepted (a window file may list all four) but do not matter:
facts are always replayed from the log start, because a consent given before the window
still decides a request inside it. With explicit offsets, a send-request partition that
is not listed is not audited for `--from` and is read to its end for `--to`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BEGINNING = "beginning"
END = "end"

_OFFSET_ITEM = re.compile(r"^\s*([A-Za-z0-9._-]+):(\d+)=(\d+)\s*$")


class WindowError(ValueError):
    """A `--from` / `--to` value that cannot be understood."""


@dataclass(frozen=True)
class Bound:
    """One end of the audit window, before it is resolved against the broker."""

    kind: str  # "beginning" | "end" | "time" | "offsets"
    spec: str
    time: datetime | None = None
    offsets: Mapping[tuple[str, int], int] = field(default_factory=dict)

    @property
    def time_ms(self) -> int | None:
        return None if self.time is None else int(self.time.timestamp() * 1000)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp with an offset (`Z` allowed); naive times are refused."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WindowError(f"not an RFC 3339 time: {text!r}") from exc
    if parsed.tzinfo is None:
        raise WindowError(f"time needs an offset (e.g. Z or +01:00): {text!r}")
    return parsed


def _topic_name(name: str, prefix: str) -> str:
    return name if prefix and name.startswith(prefix) else prefix + name


def _offsets_from_json(obj: Any, prefix: str, origin: str) -> dict[tuple[str, int], int]:
    if not isinstance(obj, Mapping):
        raise WindowError(f"{origin}: expected an object {{topic: {{partition: offset}}}}")
    out: dict[tuple[str, int], int] = {}
    for topic, parts in obj.items():
        if not isinstance(parts, Mapping):
            raise WindowError(f"{origin}: {topic!r} must map partitions to offsets")
        for part, off in parts.items():
            try:
                p, o = int(part), int(off)
            except (TypeError, ValueError) as exc:
                raise WindowError(f"{origin}: bad partition/offset {part!r}: {off!r}") from exc
            if p < 0 or o < 0:
                raise WindowError(f"{origin}: negative partition or offset in {topic!r}")
            out[(_topic_name(str(topic), prefix), p)] = o
    return out


def parse_bound(text: str, *, prefix: str = "", is_end: bool = False) -> Bound:
    """Parse one `--from` (is_end False) or `--to` (is_end True) value."""
    spec = text.strip()
    if not spec:
        raise WindowError("empty window bound")
    lowered = spec.lower()
    if lowered in (BEGINNING, END, "now"):
        kind = END if lowered in (END, "now") else BEGINNING
        if (kind == END) != is_end:
            raise WindowError(f"{spec!r} is not valid for {'--to' if is_end else '--from'}")
        return Bound(kind, spec)
    path = Path(spec[1:]) if spec.startswith("@") else Path(spec)
    if spec.startswith("@") or (spec.endswith(".json") and path.is_file()):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WindowError(f"cannot read offsets file {str(path)!r}: {exc}") from exc
        if isinstance(obj, Mapping) and isinstance(obj.get("window"), Mapping):
            # a previous JSON report: continue where it stopped (cron chaining)
            obj = obj["window"].get("resume_from", {})
        return Bound("offsets", spec, offsets=_offsets_from_json(obj, prefix, str(path)))
    if "=" in spec:
        offsets: dict[tuple[str, int], int] = {}
        for item in spec.split(","):
            if not item.strip():
                continue
            m = _OFFSET_ITEM.match(item)
            if not m:
                raise WindowError(f"bad offset item {item!r}: want TOPIC:PARTITION=OFFSET")
            offsets[(_topic_name(m.group(1), prefix), int(m.group(2)))] = int(m.group(3))
        if not offsets:
            raise WindowError(f"no offsets in {spec!r}")
        return Bound("offsets", spec, offsets=offsets)
    return Bound("time", spec, time=parse_rfc3339(spec))


def positions_to_json(positions: Mapping[tuple[str, int], int]) -> dict[str, dict[str, int]]:
    """{(topic, partition): offset} in the JSON-file shape `parse_bound` reads back."""
    out: dict[str, dict[str, int]] = {}
    for (topic, part), off in sorted(positions.items()):
        out.setdefault(topic, {})[str(part)] = off
    return out
