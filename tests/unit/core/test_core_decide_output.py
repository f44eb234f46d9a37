"""The fast paths of `sendgate decide` write what the paths they replace wrote: the output
line (`decision_json` against `decision_to_dict` and `isoformat`) and the event digest
(the engine's buffer and `_as_written` against `event_digest` with `_normalised`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from core_events import EMAIL, PHONE, TEST_SECRET, order, send, unsubscribe
from msgspec.structs import replace

from streams.core.engine import (
    DecisionEngine,
    _as_written,
    _fingerprint,
    _normalised,
    contact_points,
    event_digest,
)
from streams.core.jsonl import decide_lines
from streams.core.model import Decision
from streams.core.parse import decision_json, decision_to_dict, parse_event
from streams.core.policy import PolicyBook


def _old_line(decision: Decision, stamp: datetime) -> bytes:
    """The line as `sendgate decide` built it before `decision_json`."""
    out = decision_to_dict(decision)
    out["decided_at"] = stamp.isoformat().replace("+00:00", "Z")
    return msgspec.json.encode(out)


def _scenario_decisions(scenario_dir: Path) -> list[Decision]:
    engine = DecisionEngine(PolicyBook(), TEST_SECRET)
    lines = [
        line
        for path in sorted(scenario_dir.glob("T*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    return [d for d in decide_lines(lines, engine) if isinstance(d, Decision)]


ZONES: list[Any] = [
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-3, minutes=-30)),
    timezone(timedelta(seconds=30)),
    timezone(timedelta(hours=1, microseconds=5)),
    ZoneInfo("Europe/Amsterdam"),
    None,
]


def test_decision_json_writes_the_old_line(scenario_dir: Path) -> None:
    decisions = _scenario_decisions(scenario_dir)
    assert len(decisions) > 100
    stamps = [
        datetime(2026, 12, 7, 16, 0, 1, tzinfo=UTC),
        datetime(2026, 12, 7, 16, 0, 1, 120000, tzinfo=UTC),
        datetime(2026, 12, 7, 16, 0, 1, 1, tzinfo=UTC),
    ]
    for i, decision in enumerate(decisions):
        stamp = stamps[i % len(stamps)]
        assert decision_json(decision, stamp) == _old_line(decision, stamp)
    sample = decisions[:: max(1, len(decisions) // 20)]
    for decision in sample:
        for zone in ZONES:
            for micros in (0, 1000, 123000, 5):
                for year in (1900, 2026):
                    as_of = decision.as_of.replace(tzinfo=zone, microsecond=micros, year=year)
                    changed = replace(decision, as_of=as_of)
                    assert decision_json(changed, stamps[0]) == _old_line(changed, stamps[0])


def _order_with(*contacts: dict[str, Any]) -> dict[str, Any]:
    facts = [
        {
            "contact": c,
            "obtained_at_sale": True,
            "optout_offered": True,
            "optout_method": "separate_optout_box",
        }
        for c in contacts
    ]
    return order(contacts=facts)


UNNORMALISED = {"type": "email", "value": "  Klant@Example.NL "}
UNNORMALISED_PHONE = {"type": "phone", "value": "06 1234 5678"}


@pytest.mark.parametrize(
    "record",
    [
        order(),
        _order_with(EMAIL, PHONE),
        _order_with(UNNORMALISED),
        _order_with(EMAIL, UNNORMALISED),
        _order_with(EMAIL, EMAIL),
        _order_with(UNNORMALISED_PHONE, PHONE),
        unsubscribe(),
        unsubscribe(contact=UNNORMALISED),
        unsubscribe(linked=[PHONE]),
        unsubscribe(linked=[UNNORMALISED_PHONE]),
        unsubscribe(contact=PHONE, linked=[UNNORMALISED_PHONE]),
        unsubscribe(linked=[EMAIL]),
        unsubscribe(contact=UNNORMALISED, linked=[EMAIL]),
        send(),
        send(contact=UNNORMALISED),
    ],
    ids=lambda r: r["type"],
)
def test_digest_shortcuts_give_the_digest(record: dict[str, Any]) -> None:
    event = parse_event(record)
    points = contact_points(event)
    assert event_digest(event, points) == event_digest(event)
    plain = _as_written(event, points)
    assert not plain or _normalised(event) is event
    if plain:
        assert _fingerprint(event, bytearray()) == event_digest(event)
    assert event_digest(event, points, bytearray()) == event_digest(event)


def test_engine_digest_buffer_shrinks_and_grows() -> None:
    """A long event after a short one and back: the buffer holds only the last one."""
    buffer = DecisionEngine(PolicyBook(), TEST_SECRET)._encoded
    short = parse_event(send())
    long = parse_event(_order_with(*({"type": "email", "value": f"k{i}@x.nl"} for i in range(60))))
    for event in (short, long, short):
        assert _fingerprint(event, buffer) == event_digest(event)
